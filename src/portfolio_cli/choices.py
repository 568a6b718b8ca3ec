"""The fixed sets of values that command-line options take, as types: Typer validates them and
``--help`` lists them. A position's side, kind and margin mode, tax lot matching (``Method``) and
history periods (``Every``) are the engine's too: they live here so that the command line names them
without importing the engine's records, tax and history modules (``portfolio --help`` imports every
command's options)."""

from datetime import date, timedelta
from enum import StrEnum


class Side(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is Side.LONG else -1


class Kind(StrEnum):
    SPOT = "spot"
    MARGIN = "margin"


class MarginMode(StrEnum):
    ISOLATED = "isolated"
    CROSS = "cross"


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


class Method(StrEnum):
    """How sold units are matched to the lots they came from (the tax export, rebalancing sales)."""

    FIFO = "fifo"
    LIFO = "lifo"
    HIFO = "hifo"


class Every(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    def period_of(self, day: date) -> date:
        """The first day of the period holding ``day`` (weeks start on Monday, as ISO weeks do)."""
        if self is Every.WEEK:
            return day - timedelta(day.weekday())
        if self is Every.MONTH:
            return day.replace(day=1)
        if self is Every.QUARTER:
            return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
        if self is Every.YEAR:
            return day.replace(month=1, day=1)
        return day
