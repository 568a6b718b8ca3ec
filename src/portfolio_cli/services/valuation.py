"""Where a portfolio stands: now at current marks, or at any past moment from its records, with the
margin state, each position's levels (liquidation, stop, take-profit) and the PnL against deposits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.margin import MarginState, assess_margin
from portfolio_cli.engine.records import Side, Trade
from portfolio_cli.engine.stops import Stops, best_since, nearer_stop, stops_at, trail_level
from portfolio_cli.engine.triggers import first_trigger
from portfolio_cli.engine.valuation import Performance, Valuation, distance_pct, performance_of, value_portfolio
from portfolio_cli.services.common import brackets_of, lots_of, marks_for, moment_or_now, records_of, valuation_of
from portfolio_cli.session import Session


@dataclass(frozen=True)
class PositionLevels:
    """A position's exit levels and how far the mark is from each (signed % of the mark)."""

    trade_id: int
    opened_at: datetime
    liquidation_price: Decimal | None
    liquidation_distance_pct: Decimal | None
    stop_loss: Decimal | None
    stop_distance_pct: Decimal | None
    take_profit: Decimal | None
    take_profit_distance_pct: Decimal | None
    crossed: str | None  # the level the mark is already past ('take_profit', ...): check will close it
    trailing_pct: Decimal | None = None
    trailing_stop: Decimal | None = None  # the trailing level now, from the best price since it was set
    trailing_distance_pct: Decimal | None = None


@dataclass(frozen=True)
class TrailingStop:
    """An open trade's trailing stop now: ``pct`` behind the best price since it was set."""

    trade_id: int
    symbol: str
    pct: Decimal
    level: Decimal
    distance_pct: Decimal | None


@dataclass(frozen=True)
class PortfolioValue:
    """What ``portfolio value`` shows: the valuation, margin state, performance and levels."""

    portfolio: str
    as_of: datetime
    valuation: Valuation
    margin_state: MarginState = MarginState.NONE
    performance: Performance | None = None
    levels: tuple[PositionLevels, ...] = ()
    trailing: tuple[TrailingStop, ...] = ()


def value(session: Session, name: str, aggregate: bool = False, at: datetime | None = None) -> PortfolioValue:
    """The portfolio valued at current marks (one batched price request), or as it stood ``at`` a
    past moment: the records dated up to then, valued at candle prices of that moment."""
    if at is not None:
        return _value_at(session, name, at, aggregate)
    portfolio = session.ledger.portfolio(name)
    lots = lots_of(session, portfolio)
    marks, lots = marks_for(session, lots)
    valuation = valuation_of(session, portfolio, marks, lots=lots, aggregate=aggregate)
    return _with_state(session, name, session.clock(), valuation, lots)


def _value_at(session: Session, name: str, moment: datetime, aggregate: bool) -> PortfolioValue:
    portfolio = session.ledger.portfolio(name)
    moment = moment_or_now(session, moment, portfolio.created_at, f"{name} was created")
    lots, flows = records_of(session.ledger, portfolio).at(moment)
    marks = session.prices.marks_at({lot.trade.symbol for lot in lots if lot.is_open}, moment, fills=True)
    settings = session.settings.for_portfolio(name)
    valuation = value_portfolio(flows, lots, marks, brackets_of(settings), aggregate)
    return _with_state(session, name, moment, valuation, lots)


def _with_state(
    session: Session, name: str, moment: datetime, valuation: Valuation, lots: Sequence[Lot]
) -> PortfolioValue:
    margin = assess_margin(valuation, brackets_of(session.settings.for_portfolio(name)))
    liquidation = {p.trade_id: p.liquidation_price for p in margin.positions}
    trades = {lot.trade.id: lot.trade for lot in lots}
    amendments = session.ledger.amendments(session.ledger.portfolio(name))
    levels = []
    trailing_stops = []
    marks = {(p.symbol, p.side): p.mark for p in valuation.positions}
    for lot in lots:
        t = lot.trade
        stops = stops_at(t, amendments, moment)
        mark = marks.get((t.symbol, t.side))
        level = trailing_level(session, t, stops, mark, moment) if lot.open_qty_at(moment) > 0 else None
        if level is not None and stops.trailing_pct is not None:
            distance = distance_pct(mark, level) if mark is not None else None
            trailing_stops.append(TrailingStop(t.id, t.symbol, stops.trailing_pct, level, distance))
    for p in valuation.positions:
        if p.trade_id is None:  # an aggregated row has no single set of levels
            continue
        t = trades[p.trade_id]
        liq = liquidation.get(p.trade_id)
        stops = stops_at(t, amendments, moment)
        trailing = trailing_level(session, t, stops, p.mark, moment)
        stop, _ = nearer_stop(p.side, stops.stop_loss, trailing)
        trigger = first_trigger(p.side, p.mark, p.mark, p.mark, stop, stops.take_profit, liq)
        crossed = trigger.reason.value if trigger else None
        if trigger is not None and trailing is not None and stop == trailing and crossed == "stop_loss":
            crossed = "trailing_stop"
        levels.append(
            PositionLevels(
                p.trade_id,
                t.opened_at,
                liq,
                distance_pct(p.mark_usdt, liq),
                stops.stop_loss,
                distance_pct(p.mark, stops.stop_loss),
                stops.take_profit,
                distance_pct(p.mark, stops.take_profit),
                crossed,
                stops.trailing_pct,
                trailing,
                distance_pct(p.mark, trailing),
            )
        )
    return PortfolioValue(
        name, moment, valuation, margin.state, performance_of(valuation), tuple(levels), tuple(trailing_stops)
    )


def trailing_level(
    session: Session, trade: Trade, stops: Stops, price: Decimal | None, until: datetime | None = None
) -> Decimal | None:
    """The trailing stop now (or ``until``): from its reference, over the candles the ledger holds since
    it was set (those ``check`` replayed; nothing is fetched), and the current ``price``."""
    if stops.trailing_pct is None or stops.reference is None or stops.trail_from is None:
        return None
    best = stops.reference
    now = until or session.clock()
    for timeframe in ("1m", "1h"):
        series = session.prices.candles(trade.symbol, timeframe, stops.trail_from, now, fetch=False)
        best = best_since(trade.side, best, series.candles, stops.trail_from)
    if price is not None:
        best = max(best, price) if trade.side is Side.LONG else min(best, price)
    return trail_level(trade.side, best, stops.trailing_pct)
