"""The SQLite ledger: the source of truth, append-only in spirit."""

from portfolio_cli.ledger.store import Ledger, open_ledger

__all__ = ["Ledger", "open_ledger"]
