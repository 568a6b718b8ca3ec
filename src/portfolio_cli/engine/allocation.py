"""Where the equity sits: by asset, class and sector, long and short, and how concentrated it is.

- An asset's exposure is the value of its positions at the mark: long spot and margin longs add,
  margin shorts subtract (net); its weight is net exposure over equity, in percent.
- Classes: BTC, ETH, stablecoins and altcoins, unless the config names another; sectors come from the
  config ("unclassified" otherwise).
- Concentration: the largest single weight (by absolute net exposure), and the Herfindahl index
  ``H = Σ s_i²`` of the assets' shares ``s_i = |net_i| / Σ |net_j|`` of the exposure (1 when one
  asset holds it all, ``1/n`` when ``n`` share it equally); ``1/H`` is the effective number of assets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from portfolio_cli.engine.records import Side
from portfolio_cli.engine.symbols import base_of
from portfolio_cli.engine.valuation import PositionValue
from portfolio_cli.money import HUNDRED, ZERO

STABLECOINS = frozenset({"USDT", "USDC", "BUSD", "DAI", "FDUSD", "TUSD", "USDP", "PYUSD", "USDE"})
UNCLASSIFIED = "unclassified"


def asset_class(asset: str, classes: Mapping[str, str]) -> str:
    if asset in classes:
        return classes[asset]
    if asset in ("BTC", "ETH"):
        return asset
    return "stablecoins" if asset in STABLECOINS else "altcoins"


@dataclass(frozen=True)
class Exposures:
    long: Decimal
    short: Decimal

    @property
    def net(self) -> Decimal:
        return self.long - self.short

    @property
    def gross(self) -> Decimal:
        return self.long + self.short


def exposures_by_asset(positions: Iterable[PositionValue]) -> dict[str, Exposures]:
    """Long and short exposure of each base asset, in USDT at the mark."""
    long: dict[str, Decimal] = {}
    short: dict[str, Decimal] = {}
    for p in positions:
        book = long if p.side is Side.LONG else short
        asset = base_of(p.symbol)
        book[asset] = book.get(asset, ZERO) + p.qty * p.mark_usdt
    return {a: Exposures(long.get(a, ZERO), short.get(a, ZERO)) for a in sorted(set(long) | set(short))}


def pct_of_equity(value: Decimal, equity: Decimal) -> Decimal | None:
    return value / equity * HUNDRED if equity > 0 else None


@dataclass(frozen=True)
class Concentration:
    largest_asset: str | None
    largest_weight_pct: Decimal | None  # percent of equity, by absolute net exposure
    herfindahl: Decimal | None

    @property
    def effective_assets(self) -> Decimal | None:
        return 1 / self.herfindahl if self.herfindahl else None


def concentration(net: Mapping[str, Decimal], equity: Decimal) -> Concentration:
    held = {a: abs(v) for a, v in net.items() if v}
    total = sum(held.values(), ZERO)
    if not held or not total:
        return Concentration(None, None, None)
    largest = max(held, key=lambda a: (held[a], a))
    return Concentration(
        largest, pct_of_equity(held[largest], equity), sum(((v / total) ** 2 for v in held.values()), ZERO)
    )


def grouped(net: Mapping[str, Decimal], key) -> dict[str, Decimal]:
    """Net exposure summed by ``key(asset)``."""
    groups: dict[str, Decimal] = {}
    for asset, value in net.items():
        groups[key(asset)] = groups.get(key(asset), ZERO) + value
    return dict(sorted(groups.items(), key=lambda item: (-abs(item[1]), item[0])))
