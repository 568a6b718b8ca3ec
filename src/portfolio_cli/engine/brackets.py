"""Binance USDⓈ-M leverage brackets: maintenance margin and the leverage cap by notional.

Binance ("Leverage and Margin of USDⓈ-M Futures", and the ``/fapi/v1/leverageBracket`` data) sets, per
symbol, brackets of position notional ``(floor, cap]``, each with a maximum leverage, a maintenance
margin rate ``mmr`` and a maintenance amount ``cum``. For a position of notional ``N`` in bracket b:

- maintenance margin ``MM = N·mmr_b − cum_b``
- the leverage may not exceed ``max_leverage_b``

``cum`` makes MM continuous across brackets: ``cum_b = cum_{b−1} + floor_b·(mmr_b − mmr_{b−1})``.
A notional above the last cap uses the last bracket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from portfolio_cli.money import ZERO, D


@dataclass(frozen=True)
class Bracket:
    """One leverage bracket: notional from ``floor`` up to ``cap``, its maximum leverage, maintenance rate and
    amount."""

    number: int
    floor: Decimal
    cap: Decimal
    max_leverage: int
    mmr: Decimal
    cum: Decimal


@dataclass(frozen=True)
class BracketTable:
    """One symbol's brackets, lowest notional first, and where they came from."""

    symbol: str
    brackets: tuple[Bracket, ...]
    source: str  # "Binance snapshot 2026-…", "file …", "config", "flat rate"

    def at(self, notional: Decimal) -> Bracket:
        """The bracket holding ``notional``: the first whose cap is not below it."""
        for bracket in self.brackets:
            if notional <= bracket.cap:
                return bracket
        return self.brackets[-1]

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        """``N·mmr − cum`` from the bracket of ``N`` (never below 0)."""
        bracket = self.at(abs(notional))
        return max(ZERO, abs(notional) * bracket.mmr - bracket.cum)

    def max_leverage(self, notional: Decimal) -> int:
        return self.at(abs(notional)).max_leverage

    @property
    def top_leverage(self) -> int:
        return max(b.max_leverage for b in self.brackets)


Brackets = Callable[[str], BracketTable]


def flat_table(symbol: str, mmr: Decimal, max_leverage: int = 125, source: str = "flat rate") -> BracketTable:
    """One bracket for every size: a flat maintenance rate, no maintenance amount."""
    return BracketTable(symbol, (Bracket(1, ZERO, Decimal("1e18"), max_leverage, mmr, ZERO),), source)


def build_table(symbol: str, rows: Iterable[Mapping[str, Any]], source: str) -> BracketTable:
    """A table from rows shaped like Binance's brackets (``notionalFloor``, ``notionalCap``,
    ``initialLeverage``, ``maintMarginRatio``, ``cum``). ``cum`` may be left out: it is then derived
    so MM is continuous. Raises ValueError for a table that is not one (gaps, overlaps, bad numbers)."""
    parsed = []
    for index, row in enumerate(rows, start=1):
        try:
            floor = D(str(row.get("notionalFloor", row.get("floor", "0"))))
            cap = D(str(row.get("notionalCap", row.get("cap"))))
            leverage = int(str(row.get("initialLeverage", row.get("max_leverage"))))
            mmr = D(str(row.get("maintMarginRatio", row.get("mmr"))))
            cum_raw = row.get("cum")
            cum = D(str(cum_raw)) if cum_raw is not None else None
        except (TypeError, ValueError, AttributeError):
            raise ValueError(f"{symbol}: bracket {index} is not a bracket: {dict(row)!r}") from None
        if not (ZERO <= floor < cap) or not 1 <= leverage <= 125 or not ZERO <= mmr < 1:
            raise ValueError(f"{symbol}: bracket {index} has an impossible range, leverage or rate")
        parsed.append((floor, cap, leverage, mmr, cum))
    if not parsed:
        raise ValueError(f"{symbol}: no brackets")
    parsed.sort(key=lambda r: r[0])
    brackets: list[Bracket] = []
    for index, (floor, cap, leverage, mmr, cum) in enumerate(parsed, start=1):
        if brackets and floor != brackets[-1].cap:
            raise ValueError(f"{symbol}: bracket {index} starts at {floor}, not where bracket {index - 1} ends")
        if not brackets and floor != 0:
            raise ValueError(f"{symbol}: the first bracket must start at 0")
        if cum is None:
            cum = brackets[-1].cum + floor * (mmr - brackets[-1].mmr) if brackets else ZERO
        brackets.append(Bracket(index, floor, cap, leverage, mmr, cum))
    return BracketTable(symbol, tuple(brackets), source)


def parse_leverage_brackets(payload: Any, source: str) -> dict[str, BracketTable]:
    """Binance's ``/fapi/v1/leverageBracket`` answer (a list of ``{symbol, brackets}``), or a file
    wrapping it as ``{"brackets": [...]}``, keyed by Binance's market id (``BTCUSDT``)."""
    items = payload.get("brackets") if isinstance(payload, dict) else payload
    if not isinstance(items, list) or not items:
        raise ValueError("expected a list of {symbol, brackets} as Binance's leverageBracket endpoint returns")
    tables = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
            raise ValueError("every entry needs a symbol and its brackets")
        rows = item.get("brackets")
        if not isinstance(rows, list):
            raise ValueError(f"{item['symbol']}: brackets must be a list")
        tables[item["symbol"]] = build_table(item["symbol"], rows, source)
    return tables
