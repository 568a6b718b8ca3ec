"""Every SQLite failure becomes one ``LedgerFailure`` (exit 6) that says what went wrong in words.

The ledger's connection raises them itself (``LedgerConnection``), on every statement, fetch and
commit, so no SQLite error can leave a command as a traceback.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, cast

from portfolio_cli.errors import LedgerFailure

# Below this much free space an I/O error is a full disk: SQLite reports a disk too full to grow
# the WAL index (-shm) as "disk I/O error", not as SQLITE_FULL.
NEARLY_FULL_BYTES = 1 << 20


_KINDS: dict[type, type] = {}


def ledger_failure(exc: sqlite3.Error, path: str | None = None, noun: str = "the ledger") -> LedgerFailure:
    """``exc`` as the trader should read it, naming the ledger at ``path``. The failure is also of
    ``exc``'s own class (an ``OperationalError`` stays one), so code that handles a particular SQLite
    error still can."""
    if isinstance(exc, LedgerFailure):
        return exc
    kind = type(exc)
    if kind not in _KINDS:
        _KINDS[kind] = type(kind.__name__, (LedgerFailure, kind), {"__module__": __name__})
    where = f"{noun} at {path}" if path else noun
    failure = _KINDS[kind](f"cannot use {where}: {_reason(exc, path)}")
    failure.sqlite_errorcode = getattr(exc, "sqlite_errorcode", None)
    failure.sqlite_errorname = getattr(exc, "sqlite_errorname", None)
    return failure


def _reason(exc: sqlite3.Error, path: str | None) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and _nearly_full(path)):
        reason = "the disk is full"
    elif name.startswith("SQLITE_READONLY") or (name.startswith("SQLITE_CANTOPEN") and _read_only(path)):
        reason = "it is read-only (the file, its directory or the file system cannot be written)"
    elif name.startswith("SQLITE_CANTOPEN"):
        reason = "it cannot be opened (its directory is missing or cannot be written)"
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        reason = "another command held it for too long; try again"
    elif name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        reason = f"it is damaged or not a ledger ({exc})"
    elif name.startswith("SQLITE_IOERR"):
        reason = f"a disk I/O error ({name})"
    else:
        reason = str(exc) or name or type(exc).__name__
    return reason


def _read_only(path: str | None) -> bool:
    if not path:
        return False
    directory = os.path.dirname(path) or "."
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK))


def _nearly_full(path: str | None) -> bool:
    if not path:
        return False
    try:
        found = os.statvfs(os.path.dirname(path) or ".")
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < NEARLY_FULL_BYTES


class LedgerCursor(sqlite3.Cursor):
    """A cursor whose every SQLite error is a ``LedgerFailure``."""

    def execute(self, *args: Any) -> LedgerCursor:
        try:
            return super().execute(*args)
        except sqlite3.Error as exc:
            raise self.connection.failure(exc) from None  # type: ignore[attr-defined]

    def executemany(self, *args: Any) -> LedgerCursor:
        try:
            return super().executemany(*args)
        except sqlite3.Error as exc:
            raise self.connection.failure(exc) from None  # type: ignore[attr-defined]

    def executescript(self, *args: Any) -> LedgerCursor:
        try:
            return cast(LedgerCursor, super().executescript(*args))
        except sqlite3.Error as exc:
            raise self.connection.failure(exc) from None  # type: ignore[attr-defined]

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise self.connection.failure(exc) from None  # type: ignore[attr-defined]

    def fetchmany(self, *args: Any) -> list[Any]:
        try:
            return super().fetchmany(*args)
        except sqlite3.Error as exc:
            raise self.connection.failure(exc) from None  # type: ignore[attr-defined]

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise self.connection.failure(exc) from None  # type: ignore[attr-defined]

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise self.connection.failure(exc) from None  # type: ignore[attr-defined]


class LedgerConnection(sqlite3.Connection):
    """The ledger's connection (``sqlite3.connect(..., factory=LedgerConnection)``): statements run
    through ``LedgerCursor``, and a failed commit is a ``LedgerFailure`` too."""

    ledger_path: str | None = None  # set by whoever opens it, to name it in messages

    def failure(self, exc: sqlite3.Error) -> LedgerFailure:
        return ledger_failure(exc, self.ledger_path)

    def cursor(self, factory: Any = LedgerCursor) -> Any:
        return super().cursor(factory)

    def execute(self, *args: Any) -> LedgerCursor:
        return self.cursor().execute(*args)

    def executemany(self, *args: Any) -> LedgerCursor:
        return self.cursor().executemany(*args)

    def executescript(self, *args: Any) -> LedgerCursor:
        return self.cursor().executescript(*args)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as exc:
            raise self.failure(exc) from None
