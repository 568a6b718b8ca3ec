"""`portfolio rebalance`: plan the trades back to the targets, book them all or none, keep a log.

When a rebalance is due (for ``--if-due``): the threshold strategy when any asset or cash is outside
its band; the periodic one when ``period_days`` have passed since the last rebalance (or there was
none). Either way never within ``min_interval_hours`` of the last one, unless forced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from portfolio_cli.config import Targets as TargetSettings
from portfolio_cli.engine.accounting import Lot, fee_for
from portfolio_cli.engine.allocation import exposures_by_asset
from portfolio_cli.engine.booking import Entry, RebalanceLink, booking, close_entry, close_lots, open_entry
from portfolio_cli.engine.rebalance import (
    CASH,
    Account,
    Holding,
    Plan,
    PlannedTrade,
    Weight,
    loss_sales,
    plan_rebalance,
)
from portfolio_cli.engine.records import Kind, Portfolio, RebalanceEvent, Side, Trade
from portfolio_cli.engine.rules import lot_exposure
from portfolio_cli.engine.stats import group_of
from portfolio_cli.errors import ConfigInvalid, RuleRefused
from portfolio_cli.ledger import Ledger
from portfolio_cli.money import ZERO
from portfolio_cli.services.allocation import State, current_state, engine_targets
from portfolio_cli.services.common import lots_of
from portfolio_cli.services.risk import asset_groups, usdt_pair
from portfolio_cli.session import Session


@dataclass(frozen=True)
class Rebalance:
    portfolio: str
    at: datetime
    strategy: str
    mode: str
    plan: Plan
    due: bool
    why: str  # why it is (not) due
    too_soon: bool  # within min_interval_hours of the last rebalance
    last: RebalanceEvent | None
    version: tuple[int | None, ...]  # the portfolio's records as planned (Ledger.records_version)
    executed: int | None = None  # the rebalance event's id once booked


def targets_of(session: Session, name: str) -> TargetSettings:
    targets = session.settings.targets.get(name)
    if targets is None:
        raise ConfigInvalid(f"{name} has no targets: add [targets.{name}] weights = {{...}} to the config")
    return targets


def plan(session: Session, name: str) -> Rebalance:
    targets = targets_of(session, name)
    portfolio = session.ledger.portfolio(name)
    version = session.ledger.records_version(portfolio)  # before anything is read from the records
    state = current_state(session, name)
    settings = session.settings.for_portfolio(name)
    now = session.clock()
    result = plan_rebalance(
        _account(state),
        _holdings(session, state, targets.tax_method),
        engine_targets(targets),
        settings.fees.rate(False),
        settings.trading.slippage_bps,
        settings.risk.limits(),
        _groups(session, name, state),
        loss_sales(state.lots, now) if targets.avoid_wash_sales else None,
    )
    history = session.ledger.rebalances(portfolio)
    last = history[-1] if history else None
    too_soon = last is not None and now - last.at < timedelta(hours=float(targets.min_interval_hours))
    due, why = _due(targets, result, last, now)
    return Rebalance(name, now, targets.strategy, targets.mode, result, due, why, too_soon, last, version)


def _account(state: State) -> Account:
    v = state.valuation
    positions = tuple(lot_exposure(lot) for lot in state.lots if lot.is_open)
    return Account(v.equity, v.free_margin, v.margin_equity, v.margin_used, positions)


def _spot_lots(lots: list[Lot], asset: str, method: str = "fifo") -> list[Lot]:
    """The asset's open spot lots in its USDT pair, in the order a sale closes them (the targets'
    ``tax_method``): fifo oldest first, lifo newest first, hifo highest cost per unit first (ties:
    oldest first)."""
    symbol = usdt_pair(asset)
    held = [lot for lot in lots if lot.is_open and lot.trade.kind is Kind.SPOT and lot.trade.symbol == symbol]
    oldest = sorted(held, key=lambda lot: (lot.trade.opened_at, lot.trade.id))
    if method == "lifo":
        return oldest[::-1]
    if method == "hifo":
        return sorted(oldest, key=lambda lot: -(lot.trade.price_usdt + lot.trade.fee / lot.trade.qty))
    return oldest


def _holdings(session: Session, state: State, method: str) -> dict[str, Holding]:
    exposures = exposures_by_asset(state.valuation.positions)
    holdings = {}
    unknown = []
    for asset, price in state.prices.items():
        lots = _spot_lots(state.lots, asset, method)
        held = exposures.get(asset)
        rules = session.prices.rules(usdt_pair(asset))
        if rules is None:
            unknown.append(usdt_pair(asset))
        holdings[asset] = Holding(
            asset=asset,
            price=price,
            exposure=held.net if held else ZERO,
            spot_qty=sum((lot.open_qty for lot in lots), ZERO),
            rules=rules,
            lots=tuple((lot.open_qty, lot_exposure(lot)) for lot in lots),
        )
    if unknown:
        session.warn(f"trading rules unknown (offline, or Binance unreachable) for {', '.join(unknown)}: lot steps and minimums not checked")
    return holdings


def _groups(session: Session, name: str, state: State) -> dict[str, frozenset[str]] | None:
    """Each asset's correlation group among those held or targeted (None: history missing, so the
    correlation rule is not checked, as `open` does)."""
    risk = session.settings.for_portfolio(name).risk
    assets = {a for a in state.prices if a != CASH}
    if len(assets) < 2:
        return None
    groups, missing = asset_groups(session, assets, risk.correlation_days, risk.correlation_threshold)
    if missing:
        session.warn(f"correlation rule not checked: no daily history for {', '.join(missing)}")
        return None
    return {a: frozenset(group_of(a, groups)) for a in assets}


def _due(targets: TargetSettings, plan: Plan, last: RebalanceEvent | None, now: datetime) -> tuple[bool, str]:
    if last is not None:
        since = now - last.at
        if since < timedelta(hours=float(targets.min_interval_hours)):
            hours = since.total_seconds() / 3600
            return (
                False,
                f"the last rebalance was {hours:.1f} h ago, within min_interval_hours = {targets.min_interval_hours}",
            )
    if targets.strategy == "periodic":
        if last is None:
            return True, "periodic: no rebalance yet"
        days = (now - last.at).total_seconds() / 86400
        if days >= targets.period_days:
            return True, f"periodic: {days:.1f} days since the last rebalance (period_days = {targets.period_days})"
        return False, f"periodic: {days:.1f} of {targets.period_days} days since the last rebalance"
    outside = [w.asset for w in plan.before if w.outside]
    if outside:
        return True, f"threshold: {', '.join(outside)} outside the ±{targets.drift_pct} % band"
    return False, f"threshold: every asset and cash within ±{targets.drift_pct} % of its target"


def execute(session: Session, planned: Rebalance, force: bool) -> Rebalance:
    """Book every trade of the plan in one transaction, with the rebalance event; all or nothing."""
    if planned.too_soon and not force:
        raise RuleRefused(f"refused: {planned.why}; --force overrides")
    if not planned.plan.trades:
        return planned
    ledger = session.ledger
    portfolio = ledger.portfolio(planned.portfolio)
    settings = session.settings.for_portfolio(planned.portfolio)
    method = targets_of(session, planned.portfolio).tax_method
    now = planned.at
    with ledger.transaction(session.command, now):
        # The plan's cash, holdings, risk checks and interval all stand on the records it read.
        if ledger.records_version(portfolio) != planned.version:
            raise RuleRefused("the portfolio changed while the plan was made or confirmed; run the command again")
        lots = lots_of(session, portfolio)
        (event_id,) = ledger.book(portfolio, booking([Entry(_event(portfolio, planned, planned.too_soon, []))])).ids
        booked = []
        for t in planned.plan.trades:
            note = f"rebalance {event_id}"
            if t.buy:
                booked.append(_book_buy(ledger, portfolio, t, now, note, settings.fees.rate(False)))
            else:
                booked.append(
                    _book_sell(
                        ledger, portfolio, _spot_lots(lots, t.asset, method), t, now, note, settings.fees.rate(False)
                    )
                )
        ledger.book(portfolio, booking([Entry(RebalanceLink(event_id, tuple(booked)))]))
    return replace(planned, executed=event_id)


def _event(portfolio: Portfolio, planned: Rebalance, forced: bool, trades: list[dict]) -> RebalanceEvent:
    def weights(rows: tuple[Weight, ...]) -> tuple[tuple[str, Decimal | None, Decimal], ...]:
        return tuple((w.asset, w.target, w.weight_pct) for w in rows)

    p = planned.plan
    return RebalanceEvent(
        id=0,
        portfolio_id=portfolio.id,
        at=planned.at,
        strategy=planned.strategy,
        mode=planned.mode,
        forced=forced,
        drift_before=p.drift_before,
        drift_after=p.drift_after,
        fees=p.fees,
        before=weights(p.before),
        after=weights(p.after),
        trades=tuple(trades),
    )


def _book_buy(
    ledger: Ledger, portfolio: Portfolio, t: PlannedTrade, at: datetime, note: str, fee_rate: Decimal
) -> dict:
    fee = fee_for(t.qty, t.price, fee_rate)
    trade = Trade(0, t.symbol, Side.LONG, Kind.SPOT, None, 1, t.qty, t.price, t.price, fee, at, note=note)
    (trade_id,) = ledger.book(portfolio, booking([open_entry(trade)])).ids
    return {
        "asset": t.asset,
        "side": "buy",
        "qty": str(t.qty),
        "price": str(t.price),
        "fee": str(fee),
        "trade_id": trade_id,
    }


def _book_sell(
    ledger: Ledger, portfolio: Portfolio, lots: list[Lot], t: PlannedTrade, at: datetime, note: str, fee_rate: Decimal
) -> dict:
    closes, remaining = [], t.qty
    for lot in lots:  # in the order given (the tax method's), each lot as far as it goes
        take = min(lot.open_qty, remaining)
        if take > 0:
            closes += [close for _, close in close_lots([lot], take, t.price, t.price, fee_rate, at, note)]
            remaining -= take
    close_ids = list(ledger.book(portfolio, booking(close_entry(close) for close in closes)).ids)
    fees = sum((close.fee for close in closes), ZERO)
    return {
        "asset": t.asset,
        "side": "sell",
        "qty": str(t.qty),
        "price": str(t.price),
        "fee": str(fees),
        "close_ids": close_ids,
    }


def run(
    session: Session,
    name: str,
    execute_plan: bool,
    force: bool = False,
    if_due: bool = False,
    confirm: Callable[[Rebalance], bool] = lambda planned: True,
) -> Rebalance:
    """Plan, and with ``execute_plan`` book it once confirmed (and, with ``if_due``, only when due)."""
    planned = plan(session, name)
    if not execute_plan or (if_due and not planned.due) or not planned.plan.trades:
        return planned
    if not confirm(planned):
        raise RuleRefused("not confirmed: nothing was booked")
    return execute(session, planned, force)


def rebalance_log(session: Session, name: str) -> list[RebalanceEvent]:
    return session.ledger.rebalances(session.ledger.portfolio(name))
