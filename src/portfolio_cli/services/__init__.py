"""Use cases: each function is one command's work, composed from the ledger, prices and engine.

Prices are fetched before the write transaction (the network must not hold the ledger's lock);
inside it the state is read again, checked and written, all or nothing.
"""

from portfolio_cli.services.common import check_name, parse_symbol
from portfolio_cli.services.portfolios import (
    CashMovement,
    PortfolioSummary,
    deposit,
    init_portfolio,
    list_portfolios,
    withdraw,
)
from portfolio_cli.services.trading import (
    ClosedSlice,
    CloseResult,
    Fill,
    OpenRequest,
    TradeRow,
    close_trades,
    list_trades,
    open_trade,
)
from portfolio_cli.services.valuation import PortfolioValue, value

__all__ = [
    "CashMovement",
    "CloseResult",
    "ClosedSlice",
    "Fill",
    "OpenRequest",
    "PortfolioSummary",
    "PortfolioValue",
    "TradeRow",
    "check_name",
    "close_trades",
    "deposit",
    "init_portfolio",
    "list_portfolios",
    "list_trades",
    "open_trade",
    "parse_symbol",
    "value",
    "withdraw",
]
