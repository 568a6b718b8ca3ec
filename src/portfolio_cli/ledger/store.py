"""The ledger: one class composed of its concerns (connection and transactions in ``connection``,
reads in ``queries``, writes in ``booking``, candle and quote caches in ``caches``, notification state
and outbox in ``outbox``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from portfolio_cli.errors import LedgerFailure
from portfolio_cli.ledger import failures
from portfolio_cli.ledger.booking import Writes
from portfolio_cli.ledger.caches import Caches
from portfolio_cli.ledger.connection import BUSY_TIMEOUT_MS, connect
from portfolio_cli.ledger.outbox import NotifyStore

__all__ = ["BUSY_TIMEOUT_MS", "Ledger", "open_ledger"]


class Ledger(Writes, Caches, NotifyStore):
    """Open one with ``open_ledger``. Every write goes through ``Ledger.transaction``."""


def open_ledger(path: Path) -> Ledger:
    """Open (creating if needed) the ledger at ``path`` and bring its schema up to date."""
    from portfolio_cli.files import describe

    try:
        ledger = Ledger(connect(path))
    except sqlite3.Error as exc:  # raised before the ledger's own connection could translate it
        raise failures.ledger_failure(exc, str(path)) from None
    except OSError as exc:
        raise LedgerFailure(f"cannot open the ledger at {path}: {describe(exc)}") from None
    try:
        ledger.migrate()
    except BaseException:
        ledger.close()
        raise
    return ledger
