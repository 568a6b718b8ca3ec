"""The ledger: one class composed of its concerns (connection and transactions in ``connection``,
reads in ``queries``, writes in ``booking``, candle and quote caches in ``caches``, notification state
and outbox in ``outbox``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from portfolio_cli.errors import LedgerFailure
from portfolio_cli.ledger.booking import Booking
from portfolio_cli.ledger.caches import Caches
from portfolio_cli.ledger.connection import BUSY_TIMEOUT_MS, connect
from portfolio_cli.ledger.outbox import NotifyStore

__all__ = ["BUSY_TIMEOUT_MS", "Ledger", "open_ledger"]


class Ledger(Booking, Caches, NotifyStore):
    """Open one with ``open_ledger``. Every write goes through ``Ledger.transaction``."""


def open_ledger(path: Path) -> Ledger:
    """Open (creating if needed) the ledger at ``path`` and bring its schema up to date."""
    try:
        ledger = Ledger(connect(path))
        ledger.migrate()
    except sqlite3.DatabaseError as exc:
        raise LedgerFailure(f"cannot use the ledger at {path}: {exc}") from None
    except OSError as exc:
        raise LedgerFailure(f"cannot open the ledger at {path}: {exc.strerror}") from None
    return ledger
