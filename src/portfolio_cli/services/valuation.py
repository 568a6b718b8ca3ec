"""Where a portfolio stands: now at current marks, or at any past moment from its records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portfolio_cli.engine.valuation import Valuation, value_portfolio
from portfolio_cli.services.common import brackets_of, lots_of, marks_for, moment_or_now, records_of, valuation_of
from portfolio_cli.session import Session


@dataclass(frozen=True)
class PortfolioValue:
    portfolio: str
    as_of: datetime
    valuation: Valuation


def value(session: Session, name: str, aggregate: bool = False, at: datetime | None = None) -> PortfolioValue:
    """The portfolio valued at current marks (one batched price request), or as it stood ``at`` a
    past moment: the records dated up to then, valued at candle prices of that moment."""
    if at is not None:
        return _value_at(session, name, at, aggregate)
    portfolio = session.ledger.portfolio(name)
    lots = lots_of(session, portfolio)
    marks, lots = marks_for(session, lots)
    valuation = valuation_of(session, portfolio, marks, lots=lots, aggregate=aggregate)
    return PortfolioValue(name, session.clock(), valuation)


def _value_at(session: Session, name: str, moment: datetime, aggregate: bool) -> PortfolioValue:
    portfolio = session.ledger.portfolio(name)
    moment = moment_or_now(session, moment, portfolio.created_at, f"{name} was created")
    lots, flows = records_of(session.ledger, portfolio).at(moment)
    marks = session.prices.marks_at({lot.trade.symbol for lot in lots if lot.is_open}, moment)
    settings = session.settings.for_portfolio(name)
    return PortfolioValue(name, moment, value_portfolio(flows, lots, marks, brackets_of(settings), aggregate))
