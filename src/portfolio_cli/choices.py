"""The fixed sets of values that command-line options take, as types: Typer validates them and
``--help`` lists them. (Tax lot matching is ``engine.tax.Method``; history periods ``engine.history.Every``.)"""

from enum import StrEnum


class TradeStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"


class ExportKind(StrEnum):
    TRADES = "trades"
    CASHFLOWS = "cashflows"
    POSITIONS = "positions"
    SNAPSHOTS = "snapshots"
    TAX = "tax"
    REBALANCES = "rebalances"


class FileFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class ReportPeriod(StrEnum):
    """A report's window ending at its last day: 7, 30 or 90 days, a year, the year to date, or all."""

    D7 = "7d"
    D30 = "30d"
    D90 = "90d"
    YTD = "ytd"
    Y1 = "1y"
    ALL = "all"


class CompareBy(StrEnum):
    STRATEGY = "strategy"
