"""Use cases: each function is one command's work, composed from the ledger, prices and engine.

Prices are fetched before the write transaction (the network must not hold the ledger's lock);
inside it the state is read again, checked and written, all or nothing.

The names below are imported from their modules on first use, so a command loads only the use
cases it runs (start-up time is most of a read command's budget).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_HOME = {
    "check_name": "common",
    "parse_symbol": "common",
    "CashMovement": "portfolios",
    "PortfolioSummary": "portfolios",
    "deposit": "portfolios",
    "init_portfolio": "portfolios",
    "list_portfolios": "portfolios",
    "withdraw": "portfolios",
    "ClosedSlice": "trading",
    "CloseResult": "trading",
    "Fill": "trading",
    "OpenRequest": "trading",
    "TradeRow": "trading",
    "close_all": "trading",
    "close_trades": "trading",
    "list_trades": "trading",
    "open_trade": "trading",
    "PortfolioValue": "valuation",
    "value": "valuation",
}

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
    "close_all",
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


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)


if TYPE_CHECKING:
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
        close_all,
        close_trades,
        list_trades,
        open_trade,
    )
    from portfolio_cli.services.valuation import PortfolioValue, value
