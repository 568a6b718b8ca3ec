"""`portfolio allocation`: where the equity sits, against the portfolio's targets when it has some."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli.config import Targets as TargetSettings
from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.allocation import (
    UNCLASSIFIED,
    Concentration,
    asset_class,
    concentration,
    exposures_by_asset,
    grouped,
    pct_of_equity,
)
from portfolio_cli.engine.metrics import Undefined
from portfolio_cli.engine.rebalance import CASH, RebalanceTargets, Weight, weights_of
from portfolio_cli.engine.symbols import base_of
from portfolio_cli.engine.valuation import Valuation
from portfolio_cli.money import ZERO
from portfolio_cli.services.common import lots_of, valuation_of
from portfolio_cli.services.risk import asset_groups, usdt_pair
from portfolio_cli.session import Session


@dataclass(frozen=True)
class State:
    """A portfolio as the allocation and the rebalancer see it: its lots valued at current marks, and
    the marks of every asset it holds or targets."""

    lots: list[Lot]
    valuation: Valuation
    prices: dict[str, Decimal]  # asset → mark of ASSET/USDT, in USDT
    targets: TargetSettings | None


def current_state(session: Session, name: str) -> State:
    portfolio = session.ledger.portfolio(name)
    lots = lots_of(session, portfolio)
    targets = session.settings.targets.get(name)
    held = {lot.trade.symbol for lot in lots if lot.is_open}
    wanted = {usdt_pair(a) for a in (targets.weights if targets else {}) if a != CASH}
    wanted |= {usdt_pair(base_of(s)) for s in held}
    marks = session.prices.marks(held | wanted)
    valuation = valuation_of(session, portfolio, marks, lots=lots)
    prices = {base_of(symbol): marks[symbol].price_usdt for symbol in wanted}
    return State(lots, valuation, prices, targets)


def engine_targets(targets: TargetSettings) -> RebalanceTargets:
    return RebalanceTargets(
        dict(targets.weights),
        targets.drift_pct,
        buy_only=targets.mode == "buy-only",
        to_target=targets.mode == "to-target",
    )


@dataclass(frozen=True)
class AssetRow:
    asset: str
    asset_class: str
    sector: str
    long: Decimal
    short: Decimal
    net: Decimal
    weight_pct: Decimal | None  # percent of equity
    target: Decimal | None
    drift: Decimal | None  # weight − target, percentage points
    outside: bool  # beyond the band


@dataclass(frozen=True)
class GroupRow:
    name: str
    net: Decimal
    weight_pct: Decimal | None


@dataclass(frozen=True)
class CorrelatedGroup:
    assets: tuple[str, ...]
    net: Decimal
    weight_pct: Decimal | None


@dataclass(frozen=True)
class Allocation:
    portfolio: str
    as_of: datetime
    equity: Decimal
    assets: list[AssetRow]  # cash (USDT: the free margin) last
    margin_used: Decimal  # locked in margin positions, in no asset's row
    classes: list[GroupRow]
    sectors: list[GroupRow]
    long: Decimal
    short: Decimal
    net: Decimal
    concentration: Concentration
    correlated: list[CorrelatedGroup] | Undefined
    band: Decimal | None  # the targets' band, when targets are set
    notes: list[str]


def allocation(session: Session, name: str) -> Allocation:
    state = current_state(session, name)
    v = state.valuation
    equity = v.equity
    exposures = exposures_by_asset(v.positions)
    net = {a: e.net for a, e in exposures.items()}
    targets = engine_targets(state.targets) if state.targets else None
    rows = {w.asset: w for w in weights_of(equity, v.free_margin, net, targets)}
    config = session.settings.allocation
    assets = [_row(w, exposures, config.classes, config.sectors, v.free_margin, equity) for w in rows.values()]
    notes: list[str] = []
    correlated = _correlated(session, name, net, equity, notes)
    return Allocation(
        portfolio=name,
        as_of=session.clock(),
        equity=equity,
        assets=assets,
        margin_used=v.margin_used,
        classes=[
            GroupRow(n, value, pct_of_equity(value, equity))
            for n, value in grouped({**net, CASH: v.free_margin}, lambda a: asset_class(a, config.classes)).items()
        ],
        sectors=[
            GroupRow(n, value, pct_of_equity(value, equity))
            for n, value in grouped(net, lambda a: config.sectors.get(a, UNCLASSIFIED)).items()
        ],
        long=sum((e.long for e in exposures.values()), ZERO),
        short=sum((e.short for e in exposures.values()), ZERO),
        net=sum(net.values(), ZERO),
        concentration=concentration(net, equity),
        correlated=correlated,
        band=targets.band if targets else None,
        notes=notes,
    )


def _row(w: Weight, exposures, classes, sectors, cash: Decimal, equity: Decimal) -> AssetRow:
    held = exposures.get(w.asset)
    long = cash if w.asset == CASH else held.long if held else ZERO
    short = held.short if held and w.asset != CASH else ZERO
    return AssetRow(
        asset=w.asset,
        asset_class=asset_class(w.asset, classes),
        sector="" if w.asset == CASH else sectors.get(w.asset, UNCLASSIFIED),
        long=long,
        short=short,
        net=long - short,
        weight_pct=pct_of_equity(long - short, equity),
        target=w.target,
        drift=w.drift if w.target is not None else None,
        outside=w.target is not None and w.outside,
    )


def _correlated(
    session: Session, name: str, net: dict[str, Decimal], equity: Decimal, notes: list[str]
) -> list[CorrelatedGroup] | Undefined:
    """Groups of held assets whose daily returns correlate above the threshold (risk rules' settings)."""
    risk = session.settings.for_portfolio(name).risk
    held = {a for a, value in net.items() if value and a != CASH}
    if len(held) < 2:
        return []
    groups, missing = asset_groups(session, held, risk.correlation_days, risk.correlation_threshold)
    if len(held) - len(missing) < 2:
        return Undefined(f"no daily history for {', '.join(missing)}")
    if missing:
        notes.append(f"correlation: no daily history for {', '.join(missing)}")
    return [
        CorrelatedGroup(
            tuple(sorted(g)), sum((net[a] for a in g), ZERO), pct_of_equity(sum((net[a] for a in g), ZERO), equity)
        )
        for g in groups
        if len(g) > 1
    ]
