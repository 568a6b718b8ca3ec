"""Where a portfolio stands: now at current marks, or at any past moment from its records, with the
margin state, each position's levels (liquidation, stop, take-profit) and the PnL against deposits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.margin import MarginState, assess_margin
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


@dataclass(frozen=True)
class PortfolioValue:
    portfolio: str
    as_of: datetime
    valuation: Valuation
    margin_state: MarginState = MarginState.NONE
    performance: Performance | None = None
    levels: tuple[PositionLevels, ...] = ()


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
    levels = []
    for p in valuation.positions:
        if p.trade_id is None:  # an aggregated row has no single set of levels
            continue
        t = trades[p.trade_id]
        liq = liquidation.get(p.trade_id)
        trigger = first_trigger(p.side, p.mark, p.mark, p.mark, t.stop_loss, t.take_profit, liq)
        levels.append(
            PositionLevels(
                p.trade_id,
                t.opened_at,
                liq,
                distance_pct(p.mark_usdt, liq),
                t.stop_loss,
                distance_pct(p.mark, t.stop_loss),
                t.take_profit,
                distance_pct(p.mark, t.take_profit),
                trigger.reason.value if trigger else None,
            )
        )
    return PortfolioValue(name, moment, valuation, margin.state, performance_of(valuation), tuple(levels))
