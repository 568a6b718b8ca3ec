"""The ledger's connection: opening SQLite, migrations, transactions, the audit log and backups."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

from portfolio_cli.errors import LedgerFailure
from portfolio_cli.ledger import codec, migrations

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_MS = 15_000


def _sqlite_utils():
    """Import sqlite-utils without the pandas and numpy it would load only to map their column types
    (≈0.25 s on every command); we never insert pandas or numpy values. Later imports of pandas work."""
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
    return sqlite_utils


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the ledger file at ``path`` (created owner-only if missing), in WAL mode with
    the busy timeout, so cron and an interactive command can run at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Owner-only from the first byte; SQLite gives the WAL files the same mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Connection:
    """Reads are plain parameterised SQL on the connection; schema and writes go through sqlite-utils,
    imported only when a command writes (it costs ≈0.07 s, a third of a read command's budget)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._db: Database | None = None
        self._command: str | None = None
        self._now: datetime | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = _sqlite_utils().Database(self.conn)
        return self._db

    def migrate(self) -> None:
        if migrations.pending(self.conn):
            # Two processes opening a new ledger at once: the second waits, then finds nothing to do.
            with self.transaction("migrate"):
                migrations.apply(self.db)

    def close(self) -> None:
        self.conn.close()

    def backup(self, target: Path) -> str:
        """Copy the ledger to ``target`` (which must not exist) with SQLite's online backup API: a
        consistent copy even while another process writes. The copy is written beside the target
        and renamed into place, owner-only. Returns the copy's integrity check."""
        partial = target.with_name(target.name + ".partial")
        try:
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise LedgerFailure(f"{partial} exists: a backup is running or was interrupted; remove it") from None
        except OSError as exc:
            raise LedgerFailure(f"cannot write a backup to {target}: {exc.strerror}") from None
        try:
            copy = sqlite3.connect(partial)
            try:
                self.conn.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
                integrity = "; ".join(row[0] for row in copy.execute("pragma integrity_check"))
            finally:
                copy.close()
            if target.exists():
                raise LedgerFailure(f"{target} already exists; choose another file")
            os.replace(partial, target)
        except (sqlite3.Error, OSError) as exc:
            raise LedgerFailure(f"backup to {target} failed: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        return integrity

    def data_version(self) -> int:
        """Changes whenever another connection commits: records read before a transaction began are
        still current inside it if this has not changed since before they were read."""
        return self.conn.execute("pragma data_version").fetchone()[0]

    def _rows(self, sql: str, params: list[Any] | tuple = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self, command: str, now: datetime | None = None) -> Iterator[Self]:
        """All of a command's writes, or none of them. ``BEGIN IMMEDIATE`` takes the write lock up
        front, so a concurrent writer waits (busy timeout) instead of failing half-way."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerFailure(f"the ledger is busy or unwritable: {exc}") from None
        self._command, self._now = command, now or datetime.now(UTC)
        try:
            yield self
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                conn.execute("ROLLBACK")
                raise LedgerFailure(f"could not commit to the ledger: {exc}") from None
        finally:
            self._command = self._now = None

    def _write(self, table: str, row: dict[str, Any], action: str, portfolio_id: int | None) -> int:
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        row_id = self.db.table(table).insert(row).last_pk
        details = {"table": table, "id": row_id, **{k: v for k, v in row.items() if v is not None}}
        self.audit(action, portfolio_id, details)
        return cast(int, row_id)  # these tables' key is their integer rowid

    def audit(self, action: str, portfolio_id: int | None, details: dict[str, Any]) -> None:
        """Log an event that is not itself a record (an override of a rule, say)."""
        self.conn.execute(
            "insert into audit_log (at, command, action, portfolio_id, details) values (?, ?, ?, ?, ?)",
            [
                codec.timestamp(self._now or datetime.now(UTC)),
                self._command or "",
                action,
                portfolio_id,
                json.dumps(details, sort_keys=True, default=str),
            ],
        )

    def audit_entries(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._rows("select * from audit_log order by id")]
