"""One hierarchy for every expected failure; the CLI turns each into one stderr line and its exit code.

Exit codes: 0 ok, 1 refused by a rule, 2 usage, 3 config, 4 not found, 5 price unavailable, 6 ledger.
"""


class PortfolioError(Exception):
    """An expected failure: the message is shown to the trader as it is."""

    exit_code = 1


class RuleRefused(PortfolioError):
    """A trading or risk rule refused the request; nothing was written."""

    exit_code = 1


class InvalidInput(PortfolioError):
    """An argument or option value the command cannot use."""

    exit_code = 2


class ConfigInvalid(PortfolioError):
    exit_code = 3


class NotFound(PortfolioError):
    """A portfolio, trade or symbol that does not exist."""

    exit_code = 4


class PriceUnavailable(PortfolioError):
    """No price could be had for a symbol, live or cached."""

    exit_code = 5


class ExchangeUnavailable(PriceUnavailable):
    """Binance could not be reached or answered garbage; callers may fall back to cached quotes."""


class LedgerFailure(PortfolioError):
    """The ledger file cannot be opened, is locked for too long, or is damaged."""

    exit_code = 6


class StorageFailure(LedgerFailure):
    """A file could not be written or read back: the disk is full, the file system read-only, an I/O
    error. Exit 6 like the ledger's own failures: the storage failed, not the request."""
