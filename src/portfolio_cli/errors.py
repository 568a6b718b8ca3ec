"""One hierarchy for every expected failure, and every exit code the tool uses.

The command line turns a ``PortfolioError`` into one ``error:`` line on stderr and its ``exit_code``
in one place (``cli.commands``); a command whose work was committed but needs attention returns
one of the outcome codes (10 and up). Each code has one meaning, whichever command returns it.
"""

from datetime import datetime
from enum import IntEnum, unique


@unique
class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1  # a trading or risk rule refused the request; nothing was written
    USAGE = 2  # a bad argument or option value
    CONFIG = 3  # the config file or an environment value is invalid
    NOT_FOUND = 4  # a portfolio, trade or symbol that does not exist
    PRICE_UNAVAILABLE = 5  # no price, live or cached
    LEDGER = 6  # the ledger cannot be opened, is damaged or stays locked; `verify` found a difference
    MARGIN_WARNING = 10  # `check`: margin level below 200 %
    MARGIN_ALERT = 11  # `check`: margin level below 150 %
    POSITION_CLOSED = 12  # `check`: a stop, take-profit, liquidation or margin call closed a position
    INCOMPLETE = 13  # committed, but a day, symbol or candle window could not be processed (named on stderr)
    NOT_NOTIFIED = 14  # committed, but a notification could not be sent
    INTERNAL = 70  # a bug: one line, "this is a bug", and the path of the saved traceback
    ABORTED = 130  # interrupted (Ctrl-C, SIGINT) or a prompt was aborted
    TERMINATED = 143  # stopped by SIGTERM (`value --watch`)


class PortfolioError(Exception):
    """An expected failure: the message is shown to the trader as it is."""

    exit_code = ExitCode.REFUSED


class RuleRefused(PortfolioError):
    """A trading or risk rule refused the request; nothing was written."""

    exit_code = ExitCode.REFUSED


class InvalidInput(PortfolioError):
    """An argument or option value the command cannot use."""

    exit_code = ExitCode.USAGE


class ConfigInvalid(PortfolioError):
    exit_code = ExitCode.CONFIG


class NotFound(PortfolioError):
    """A portfolio, trade or symbol that does not exist."""

    exit_code = ExitCode.NOT_FOUND


class PriceUnavailable(PortfolioError):
    """No price could be had for a symbol, live or cached."""

    exit_code = ExitCode.PRICE_UNAVAILABLE


class ExchangeUnavailable(PriceUnavailable):
    """Binance could not be reached or answered garbage; callers may fall back to cached quotes."""


class LedgerFailure(PortfolioError):
    """The ledger file cannot be opened, is locked for too long, or is damaged."""

    exit_code = ExitCode.LEDGER


class StorageFailure(LedgerFailure):
    """A file could not be written or read back: the disk is full, the file system read-only, an I/O
    error. Exit 6 like the ledger's own failures: the storage failed, not the request."""


# What the exchange adapter translates every ccxt error into (``prices.binance.translate``). All are
# ExchangeUnavailable, so a caller with cached quotes falls back to them; only temporary ones are retried.


class ExchangeTemporary(ExchangeUnavailable):
    """Worth asking again: rate limited (429), a server error (any 5xx), a timeout, a dropped connection."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(f"Binance unavailable: {reason}")
        self.reason = reason
        self.retry_after = retry_after  # seconds the server asked us to wait, if it said


class ExchangeBanned(ExchangeUnavailable):
    """HTTP 418: this IP is banned; nothing is sent again until the ban ends."""

    def __init__(self, message: str, until: datetime):
        super().__init__(message)
        self.until = until


class ExchangeBadResponse(ExchangeUnavailable):
    """An answer that is not the one asked for (garbled, empty, an HTML page, missing fields)."""


INCOMPLETE = ExitCode.INCOMPLETE  # committed, but something named on stderr could not be processed
