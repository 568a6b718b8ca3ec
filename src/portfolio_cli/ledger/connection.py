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
from portfolio_cli.guard import transaction_open
from portfolio_cli.ledger import codec, failures, migrations
from portfolio_cli.ledger.failures import LedgerConnection

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
    the busy timeout, so cron and an interactive command can run at once. Its every SQLite error is a
    ``LedgerFailure`` (``failures.LedgerConnection``). A ledger written by a newer version of the
    tool (migrations this one does not know) is refused before anything is written to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Owner-only from the first byte; SQLite gives the WAL files the same mode.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, factory=LedgerConnection)
    conn.ledger_path = str(path)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        migrations.refuse_newer(conn, path)  # before anything is written, WAL mode included
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
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
                if migrations.is_new(self.conn):
                    migrations.create(self.conn)
                else:
                    migrations.apply(self.db)

    def close(self) -> None:
        self.conn.close()

    def backup(self, target: Path) -> str:
        """Copy the ledger to ``target`` (which must not exist) with SQLite's online backup API: a
        consistent copy even while another process writes. The ledger is integrity-checked first (a
        damaged one is refused, with how to salvage it); the copy is written through the one file
        writer (owner-only, a temporary file renamed into place) and checked again. Returns the
        copy's integrity check."""
        from portfolio_cli.files import replacing

        problems = self.integrity_problems()
        if problems:
            source = self.path()
            raise LedgerFailure(
                f"the ledger at {source} fails its integrity check ({problems[0]}"
                f"{f' and {len(problems) - 1} more' if len(problems) > 1 else ''}); not backing it up. "
                f"Salvage what can be read with: sqlite3 {source} .recover | sqlite3 salvaged.db"
            )
        with replacing(target) as (_, temp):
            try:
                copy = sqlite3.connect(temp)
                try:
                    self.conn.backup(copy)
                    copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
                    integrity = "; ".join(row[0] for row in copy.execute("pragma integrity_check"))
                finally:
                    copy.close()
            except sqlite3.Error as exc:
                raise failures.ledger_failure(exc, str(target), noun="the backup") from None
            if integrity != "ok":
                raise LedgerFailure(f"the backup copy failed its integrity check ({integrity}); nothing written")
        return integrity

    def integrity_problems(self) -> list[str]:
        """What SQLite's integrity check finds wrong with the ledger; empty when it is sound."""
        try:
            rows = [row[0] for row in self.conn.execute("pragma integrity_check")]
        except LedgerFailure as exc:  # too damaged to finish the check
            return [str(exc)]
        return [] if rows == ["ok"] else rows

    def path(self) -> str:
        return self.conn.execute("pragma database_list").fetchone()[2]

    def data_version(self) -> int:
        """Changes whenever another connection commits: records read before a transaction began are
        still current inside it if this has not changed since before they were read."""
        return self.conn.execute("pragma data_version").fetchone()[0]

    def _rows(self, sql: str, params: list[Any] | tuple = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def _tuples(self, sql: str, params: list[Any] | tuple | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """All rows as plain tuples: for the large reads (100,000 rows and more), where building a
        ``sqlite3.Row`` for each costs as much as the query itself."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, params).fetchall()

    def _batches(self, sql: str, params: list[Any] | tuple = (), size: int = 5000) -> Iterator[tuple[Any, ...]]:
        """The rows as plain tuples, fetched ``size`` at a time: a large read without holding all of it
        in memory at once, nor a call into the cursor for each row."""
        cursor = self.conn.cursor()
        cursor.row_factory = None
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(size):
            yield from batch

    @contextmanager
    def transaction(self, command: str, now: datetime | None = None) -> Iterator[Self]:
        """All of a command's writes, or none of them. ``BEGIN IMMEDIATE`` takes the write lock up
        front, so a concurrent writer waits (busy timeout) instead of failing half-way."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")  # a failure here is a LedgerFailure: busy, read-only, full
        self._command, self._now = command, now or datetime.now(UTC)
        try:
            with transaction_open(command):
                yield self
        except BaseException:
            self._roll_back()
            raise
        else:
            try:
                conn.execute("COMMIT")
            except LedgerFailure:
                self._roll_back()
                raise
        finally:
            self._command = self._now = None

    @contextmanager
    def page_cache(self, mib: int) -> Iterator[None]:
        """SQLite's page cache (and sorter memory) at ``mib`` MiB instead of its default 2 MiB while a
        large write runs inside the transaction (an import of a million trades writes 700 MB): its
        pages are spilled to the WAL less often and its indexes built from larger sorted runs."""
        (before,) = self.conn.execute("pragma cache_size").fetchone()
        self.conn.execute(f"pragma cache_size = {-1024 * int(mib)}")
        try:
            yield
        finally:
            self.conn.execute(f"pragma cache_size = {int(before)}")

    def _roll_back(self) -> None:
        """Undo the open transaction, if SQLite has not already (it rolls back on a full disk)."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except LedgerFailure:
                pass  # closing the connection rolls back what is left

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
