"""Open the ledger and read and write its records. Every write goes through ``Ledger.transaction``."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portfolio_cli.engine.records import (
    Candle,
    CashFlow,
    Close,
    ClosedTrade,
    CloseReason,
    FlowKind,
    MarginChange,
    MarginMode,
    Portfolio,
    RebalanceEvent,
    Snapshot,
    SnapshotPosition,
    Trade,
    TradePart,
)
from portfolio_cli.errors import LedgerFailure, NotFound
from portfolio_cli.ledger import codec, failures, migrations, rowmap
from portfolio_cli.money import ZERO

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_MS = 15_000
ID_CHUNK = 500  # ids per IN (...) list at most


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


def open_ledger(path: Path) -> Ledger:
    """Open (creating if needed) the ledger at ``path`` and bring its schema up to date. A ledger
    written by a newer version of the tool (migrations this one does not know) is refused untouched."""
    from portfolio_cli.files import describe

    conn = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Owner-only from the first byte; SQLite gives the WAL files the same mode.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, factory=failures.LedgerConnection
        )
        conn.ledger_path = str(path)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        migrations.refuse_newer(conn, path)  # before anything is written, WAL mode included
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        ledger = Ledger(conn)
        ledger.migrate()
    except LedgerFailure:
        if conn is not None:
            conn.close()
        raise
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise failures.ledger_failure(exc, str(path)) from None
    except OSError as exc:
        raise LedgerFailure(f"cannot open the ledger at {path}: {describe(exc)}") from None
    return ledger


class Ledger:
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

    @contextmanager
    def transaction(self, command: str, now: datetime | None = None) -> Iterator[Ledger]:
        """All of a command's writes, or none of them. ``BEGIN IMMEDIATE`` takes the write lock up
        front, so a concurrent writer waits (busy timeout) instead of failing half-way."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")  # a failure here is a LedgerFailure: busy, read-only, full
        self._command, self._now = command, now or datetime.now(UTC)
        try:
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
        row_id = self.db[table].insert(row).last_pk
        details = {"table": table, "id": row_id, **{k: v for k, v in row.items() if v is not None}}
        self.audit(action, portfolio_id, details)
        return row_id

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

    # portfolios

    def create_portfolio(self, name: str, at: datetime) -> Portfolio:
        if self.find_portfolio(name) is not None:
            raise LedgerFailure(f"portfolio {name!r} already exists")
        row_id = self._write("portfolios", {"name": name, "created_at": codec.timestamp(at)}, "create portfolio", None)
        return Portfolio(row_id, name, at)

    def find_portfolio(self, name: str) -> Portfolio | None:
        rows = self._rows("select * from portfolios where name = ?", [name])
        return rowmap.portfolio(rows[0]) if rows else None

    def portfolio(self, name: str) -> Portfolio:
        found = self.find_portfolio(name)
        if found is None:
            known = ", ".join(p.name for p in self.portfolios()) or "none yet"
            raise NotFound(f"no portfolio named {name!r} (portfolios: {known}); create it with: portfolio init {name}")
        return found

    def portfolios(self) -> list[Portfolio]:
        return [rowmap.portfolio(row) for row in self._rows("select * from portfolios order by id")]

    # records

    def add_cash_flow(
        self,
        portfolio: Portfolio,
        kind: FlowKind,
        amount: Decimal,
        at: datetime,
        trade_id: int | None = None,
        note: str | None = None,
    ) -> int:
        row = {
            "portfolio_id": portfolio.id,
            "kind": kind.value,
            "amount": codec.money(amount),
            "at": codec.timestamp(at),
            "trade_id": trade_id,
            "note": note,
        }
        return self._write("cash_flows", row, f"record {kind.value}", portfolio.id)

    def cash_flows(self, portfolio: Portfolio) -> list[CashFlow]:
        rows = self._rows("select * from cash_flows where portfolio_id = ? order by id", [portfolio.id])
        return [rowmap.cash_flow(r) for r in rows]

    def add_trade(self, portfolio: Portfolio, trade: Trade, forced: bool, trade_id: int | None = None) -> int:
        """Record a trade; ``trade_id`` keeps an imported trade's id (the caller checks it is free)."""
        row = {
            **({"id": trade_id} if trade_id is not None else {}),
            "portfolio_id": portfolio.id,
            "symbol": trade.symbol,
            "side": trade.side.value,
            "kind": trade.kind.value,
            "margin_mode": trade.margin_mode.value if trade.margin_mode else None,
            "leverage": trade.leverage,
            "qty": codec.money(trade.qty),
            "price": codec.money(trade.price),
            "price_usdt": codec.money(trade.price_usdt),
            "fee": codec.money(trade.fee),
            "opened_at": codec.timestamp(trade.opened_at),
            "stop_loss": codec.optional_money(trade.stop_loss),
            "take_profit": codec.optional_money(trade.take_profit),
            "strategy": trade.strategy,
            "note": trade.note,
            "forced": int(forced),
        }
        return self._write("trades", row, "open trade", portfolio.id)

    def trade_ids_taken(self, ids: list[int]) -> bool:
        """Whether any of ``ids`` is already a trade's id, in any portfolio. Asked in chunks that fit
        this SQLite build's limit on variables in one statement (999 on some)."""
        size = max(1, min(ID_CHUNK, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)))
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            sql = f"select 1 from trades where id in ({','.join('?' * len(chunk))}) limit 1"
            if self.conn.execute(sql, chunk).fetchone() is not None:
                return True
        return False

    def trades(self, portfolio: Portfolio) -> list[Trade]:
        return [
            rowmap.trade(r)
            for r in self._rows("select * from trades where portfolio_id = ? order by id", [portfolio.id])
        ]

    def fill_rows(self, portfolio: Portfolio, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
        """Every opening and closing fill with ``since <= time < until``, in time order, all values as
        text, as the ledger stores them: an export of 100,000 trades is read straight from SQL."""
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples: a third faster than sqlite3.Row here
        cursor.execute(f"{rowmap.FILL_SQL} order by at, part, fill_id", rowmap.fill_params(portfolio, since, until))
        names = [d[0] for d in cursor.description][:-3]  # without the flag and the ordering columns
        legacy = len(names)
        money = [i for i, n in enumerate(names) if n in rowmap.FILL_MONEY]
        rows = []
        for values in cursor:
            if values[legacy]:  # money written before its text was fixed-point (1E-8, say)
                values = [codec.money(codec.decimal(v)) if i in money and v else v for i, v in enumerate(values)]
            rows.append(dict(zip(names, values, strict=False)))
        return rows

    def fill_columns(self) -> tuple[str, ...]:
        """The names of a fill's values, in the order ``fill_rows`` gives them."""
        cursor = self.conn.execute(f"select * from ({rowmap.FILL_SQL}) limit 0", [0, "", "", 0, "", ""])
        return tuple(d[0] for d in cursor.description)[:-3]  # without the flag and the ordering columns

    def fill_json(self, portfolio: Portfolio, since: datetime | None, until: datetime | None) -> list[str] | None:
        """The same fills, each as canonical JSON (keys sorted, no spaces) built by SQLite itself; None
        when this SQLite does not encode exactly as Python's canonical JSON does (checked once), or when
        a row's money text must be rewritten first. Then use ``fill_rows``."""
        if not rowmap.sqlite_json_is_canonical(self.conn):
            return None
        fields = ", ".join(f"'{name}', {name}" for name in sorted(self.fill_columns()))
        sql = f"select json_object({fields}), legacy from ({rowmap.FILL_SQL}) order by at, part, fill_id"
        rows = self.conn.execute(sql, rowmap.fill_params(portfolio, since, until)).fetchall()
        if any(legacy for _, legacy in rows):
            return None
        return [encoded for encoded, _ in rows]

    def book_close(self, portfolio: Portfolio, close: Close) -> int:
        """A close and its two cash flows: the gross realized PnL, and the fee (a liquidation fee when
        the margin rules closed the position, else a trading fee)."""
        close_id = self.add_close(portfolio, close)
        self.add_cash_flow(portfolio, FlowKind.REALIZED_PNL, close.realized_pnl, close.closed_at, close.trade_id)
        fee_kind, note = (
            (FlowKind.LIQUIDATION_FEE, "liquidation fee") if close.reason.forced_out else (FlowKind.FEE, "exit fee")
        )
        self.add_cash_flow(portfolio, fee_kind, -close.fee, close.closed_at, close.trade_id, note)
        return close_id

    def add_close(self, portfolio: Portfolio, close: Close) -> int:
        row = {
            "trade_id": close.trade_id,
            "qty": codec.money(close.qty),
            "price": codec.money(close.price),
            "price_usdt": codec.money(close.price_usdt),
            "fee": codec.money(close.fee),
            "realized_pnl": codec.money(close.realized_pnl),
            "closed_at": codec.timestamp(close.closed_at),
            "note": close.note,
            "reason": close.reason.value,
        }
        action = "close trade" if close.reason is CloseReason.MANUAL else f"close trade ({close.reason.value})"
        return self._write("closes", row, action, portfolio.id)

    def closes(self, portfolio: Portfolio) -> list[Close]:
        sql = (
            "select closes.* from closes join trades on trades.id = closes.trade_id "
            "where trades.portfolio_id = ? order by closes.id"
        )
        return [rowmap.close(r) for r in self._rows(sql, [portfolio.id])]

    @contextmanager
    def _exact_sums(self, portfolio: Portfolio) -> Iterator[None]:
        """Sums in integer units are exact while each amount has at most 10 digits before the point
        and a total stays within 64 bits; beyond that, refuse rather than round."""
        try:
            yield
        except (sqlite3.OperationalError, OverflowError) as exc:
            if "overflow" in str(exc) or isinstance(exc, OverflowError):
                raise LedgerFailure(
                    f"{portfolio.name} holds amounts too large to sum exactly (10 billion or more)"
                ) from None
            raise

    def closed_trades(self, portfolio: Portfolio, since: datetime, until: datetime) -> list[ClosedTrade]:
        """Trades whose closes cover their quantity, the last one in ``(since, until]``, with their net
        PnL (every flow but funding) summed in SQL in exact integer units. Quantities are compared as
        text for a single close (the same value is the same text) and as Decimals for several."""
        net = codec.units_sql("amount")
        sql = f"""
            select t.opened_at, c.last, t.strategy, t.qty, c.closes, c.qtys,
                (select sum({net}) from cash_flows f
                 where f.portfolio_id = t.portfolio_id and f.trade_id = t.id and f.kind != 'funding')
            from (select trade_id, max(closed_at) as last, count(*) as closes, group_concat(qty) as qtys
                  from closes group by trade_id) c
            join trades t on t.id = c.trade_id
            where t.portfolio_id = ? and c.last > ? and c.last <= ?"""
        moment, units = codec.moment, codec.from_units
        with self._exact_sums(portfolio):
            rows = self.conn.execute(sql, [portfolio.id, codec.timestamp(since), codec.timestamp(until)])
            return [
                ClosedTrade(units(pnl), moment(opened), moment(last), strategy)
                for opened, last, strategy, qty, closes, qtys, pnl in rows
                if (closes == 1 and qtys == qty) or sum(map(Decimal, qtys.split(",")), ZERO) >= Decimal(qty)
            ]

    def trade_parts(self, portfolio: Portfolio, since: datetime, until: datetime, single: set[int]) -> list[TradePart]:
        """The flows booked in ``(since, until]`` by trades (fees, realized PnL, funding), summed per
        strategy, symbol and side in exact integer units; the trades in ``single`` each on their own,
        with or without flows in the range."""
        listed = ",".join(str(int(trade_id)) for trade_id in sorted(single))
        sql = f"""
            select t.strategy, t.symbol, t.side, count(*), sum(s.units), t.id in ({listed}) as alone,
                max(t.id) as trade_id
            from (select trade_id, sum({codec.units_sql("amount")}) as units from cash_flows
                  where portfolio_id = ? and trade_id is not null and at > ? and at <= ? group by trade_id) s
            join trades t on t.id = s.trade_id
            group by t.strategy, t.symbol, t.side, case when t.id in ({listed}) then t.id end"""
        units = codec.from_units
        with self._exact_sums(portfolio):
            rows = self.conn.execute(sql, [portfolio.id, codec.timestamp(since), codec.timestamp(until)])
            parts = [
                TradePart(strategy, symbol, side, count, units(total), trade_id if alone else None)
                for strategy, symbol, side, count, total, alone, trade_id in rows
            ]
        quiet = single - {part.trade_id for part in parts}
        if quiet:
            sql = f"select strategy, symbol, side, id from trades where portfolio_id = ? and id in ({listed})"
            for strategy, symbol, side, trade_id in self.conn.execute(sql, [portfolio.id]):
                if trade_id in quiet:
                    parts.append(TradePart(strategy, symbol, side, 1, ZERO, trade_id))
        return parts

    def strategy_flows(
        self, portfolio: Portfolio, since: datetime, until: datetime
    ) -> list[tuple[str | None, FlowKind, datetime, Decimal]]:
        """Every flow a trade booked in ``(since, until]`` with its trade's strategy, oldest first."""
        sql = """
            select strategy, cash_flows.kind, at, amount from cash_flows join trades on trades.id = trade_id
            where cash_flows.portfolio_id = ? and at > ? and at <= ? order by at, cash_flows.id"""
        rows = self.conn.execute(sql, [portfolio.id, codec.timestamp(since), codec.timestamp(until)])
        return [
            (strategy, FlowKind(kind), codec.moment(at), codec.decimal(amount)) for strategy, kind, at, amount in rows
        ]

    def trade_strategies(self, portfolio: Portfolio) -> dict[int, str | None]:
        rows = self.conn.execute("select id, strategy from trades where portfolio_id = ?", [portfolio.id])
        return dict(rows.fetchall())

    def add_rebalance(self, event: RebalanceEvent) -> int:
        return self._write("rebalances", rowmap.rebalance_row(event), "rebalance", event.portfolio_id)

    def set_rebalance_trades(self, rebalance_id: int, trades: list[dict[str, Any]]) -> None:
        """Record the trades a rebalance booked (they are booked after its row, to carry its id)."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        self.conn.execute("update rebalances set trades = ? where id = ?", [json.dumps(trades), rebalance_id])
        self.audit("rebalance trades", None, {"rebalance_id": rebalance_id, "trades": trades})

    def rebalances(self, portfolio: Portfolio) -> list[RebalanceEvent]:
        rows = self._rows("select * from rebalances where portfolio_id = ? order by at, id", [portfolio.id])
        return [rowmap.rebalance(r) for r in rows]

    def traded(self, portfolio: Portfolio, since: datetime, until: datetime) -> bool:
        """Whether a trade was opened or closed in ``(since, until]``."""
        window = [portfolio.id, codec.timestamp(since), codec.timestamp(until)]
        sql = """
            select exists (select 1 from trades where portfolio_id = ?1 and opened_at > ?2 and opened_at <= ?3)
                or exists (select 1 from closes join trades on trades.id = trade_id
                           where portfolio_id = ?1 and closed_at > ?2 and closed_at <= ?3)"""
        return bool(self.conn.execute(sql, window).fetchone()[0])

    def records_version(self, portfolio: Portfolio) -> tuple[int | None, int | None]:
        """Changes whenever the portfolio's records do: every trade, close, deposit, withdrawal, fee
        and funding books a cash flow, and margin moves are margin changes (ids only ever grow)."""
        sql = """
            select (select max(id) from cash_flows where portfolio_id = ?1),
                   (select max(margin_changes.id) from margin_changes join trades on trades.id = trade_id
                    where portfolio_id = ?1)"""
        return tuple(self.conn.execute(sql, [portfolio.id]).fetchone())

    def last_booked_at(self, portfolio: Portfolio) -> datetime | None:
        """When the portfolio's latest cash flow was booked (every trade and close books one)."""
        (at,) = self.conn.execute("select max(at) from cash_flows where portfolio_id = ?", [portfolio.id]).fetchone()
        return None if at is None else codec.moment(at)

    def transfers(self, portfolio: Portfolio, since: datetime, until: datetime) -> list[CashFlow]:
        """Deposits and withdrawals booked in ``(since, until]``, oldest first."""
        sql = (
            "select * from cash_flows where portfolio_id = ? and kind in ('deposit', 'withdrawal') "
            "and at > ? and at <= ? order by at, id"
        )
        rows = self._rows(sql, [portfolio.id, codec.timestamp(since), codec.timestamp(until)])
        return [rowmap.cash_flow(r) for r in rows]

    def add_margin_change(self, portfolio: Portfolio, change: MarginChange) -> int:
        row = {
            "trade_id": change.trade_id,
            "at": codec.timestamp(change.at),
            "amount": codec.money(change.amount),
            "mode": change.mode.value if change.mode else None,
        }
        return self._write("margin_changes", row, "change margin", portfolio.id)

    def margin_changes(self, portfolio: Portfolio) -> list[MarginChange]:
        sql = (
            "select margin_changes.* from margin_changes join trades on trades.id = margin_changes.trade_id "
            "where trades.portfolio_id = ? order by margin_changes.id"
        )
        return [
            MarginChange(
                r["id"],
                r["trade_id"],
                codec.moment(r["at"]),
                codec.decimal(r["amount"]),
                MarginMode(r["mode"]) if r["mode"] else None,
            )
            for r in self._rows(sql, [portfolio.id])
        ]

    # checks

    def last_check(self, portfolio: Portfolio) -> datetime | None:
        rows = self._rows("select max(through) as through from checks where portfolio_id = ?", [portfolio.id])
        return codec.moment(rows[0]["through"]) if rows and rows[0]["through"] else None

    def record_check(self, portfolio: Portfolio, through: datetime, events: int) -> None:
        row = {
            "portfolio_id": portfolio.id,
            "through": codec.timestamp(through),
            "ran_at": codec.timestamp(self._now or through),
            "events": events,
        }
        self._write("checks", row, "check", portfolio.id)

    # snapshots: derived state kept for history; `verify` rebuilds each one from the records

    def save_snapshots(self, snapshots: list[Snapshot]) -> None:
        """Write ``snapshots``, each replacing its portfolio's snapshot of that day. Plain SQL rather
        than sqlite-utils: a cron run over a thousand portfolios writes ten thousand rows."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        conn = self.conn
        keys = [(s.portfolio_id, s.day.isoformat()) for s in snapshots]
        conn.executemany(
            "delete from snapshot_positions where snapshot_id in "
            "(select id from snapshots where portfolio_id = ? and day = ?)",
            keys,
        )
        conn.executemany("delete from snapshots where portfolio_id = ? and day = ?", keys)
        written_at = codec.timestamp(self._now or datetime.now(UTC))
        positions = []
        for snap in snapshots:
            row = rowmap.snapshot_row(snap, written_at)
            marks = ",".join("?" * len(row))
            (snapshot_id,) = conn.execute(
                f"insert into snapshots ({','.join(row)}) values ({marks}) returning id", list(row.values())
            ).fetchone()
            positions += [rowmap.snapshot_position_row(snapshot_id, p) for p in snap.positions]
        if positions:
            marks = ",".join("?" * len(positions[0]))
            conn.executemany(
                f"insert into snapshot_positions ({','.join(positions[0])}) values ({marks})",
                [list(p.values()) for p in positions],
            )
        by_portfolio: dict[int, list[Snapshot]] = {}
        for snap in snapshots:
            by_portfolio.setdefault(snap.portfolio_id, []).append(snap)
        for portfolio_id, taken in by_portfolio.items():
            days = [s.day.isoformat() for s in taken]
            backfilled = [s.day.isoformat() for s in taken if s.backfilled]
            self.audit("snapshot", portfolio_id, {"days": days, "backfilled": backfilled})

    def snapshot_days(self, portfolio: Portfolio) -> set[date]:
        rows = self._rows("select day from snapshots where portfolio_id = ?", [portfolio.id])
        return {date.fromisoformat(r["day"]) for r in rows}

    def snapshots(
        self,
        portfolio: Portfolio,
        since: date | None = None,
        until: date | None = None,
        positions: bool = False,
    ) -> list[Snapshot]:
        """The portfolio's snapshots with ``since <= day <= until``, oldest first; their positions
        only when asked for (history needs the totals alone)."""
        sql = "select * from snapshots where portfolio_id = ? and day >= ? and day <= ? order by day"
        low = since.isoformat() if since else ""
        high = until.isoformat() if until else "9999"
        rows = self._rows(sql, [portfolio.id, low, high])
        held: dict[int, list[SnapshotPosition]] = {}
        if positions and rows:
            sql = (
                "select snapshot_positions.* from snapshot_positions join snapshots on snapshots.id = snapshot_id "
                "where portfolio_id = ? and day >= ? and day <= ? order by snapshot_id, trade_id"
            )
            for r in self._rows(sql, [portfolio.id, low, high]):
                held.setdefault(r["snapshot_id"], []).append(rowmap.snapshot_position(r))
        return [rowmap.snapshot(r, tuple(held.get(r["id"], ()))) for r in rows]

    def delete_snapshots_before(self, day: date) -> int:
        """Drop every portfolio's snapshots older than ``day`` (the retention window); returns how many."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        cutoff = [day.isoformat()]
        self.conn.execute(
            "delete from snapshot_positions where snapshot_id in (select id from snapshots where day < ?)", cutoff
        )
        deleted = self.conn.execute("delete from snapshots where day < ?", cutoff).rowcount
        if deleted:
            self.audit("drop old snapshots", None, {"before": day.isoformat(), "snapshots": deleted})
        return deleted

    # candle cache (complete candles only; a cache, not a record: not audited)

    def save_candles(self, candles: list[Candle]) -> None:
        rows = [
            {
                "symbol": c.symbol,
                "timeframe": c.timeframe,
                "open_time": codec.timestamp(c.open_time),
                "open": str(c.open),
                "high": str(c.high),
                "low": str(c.low),
                "close": str(c.close),
            }
            for c in candles
        ]
        if rows:
            self.db["candles"].upsert_all(rows, pk=("symbol", "timeframe", "open_time"))

    def cached_candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        sql = (
            "select * from candles where symbol = ? and timeframe = ? and open_time >= ? and open_time < ? "
            "order by open_time"
        )
        rows = self._rows(sql, [symbol, timeframe, codec.timestamp(since), codec.timestamp(until)])
        return [
            Candle(
                r["symbol"],
                r["timeframe"],
                codec.moment(r["open_time"]),
                codec.decimal(r["open"]),
                codec.decimal(r["high"]),
                codec.decimal(r["low"]),
                codec.decimal(r["close"]),
            )
            for r in rows
        ]

    # quote cache (a cache, not a record: not audited)

    def save_quotes(self, quotes: list[tuple[str, Decimal, datetime, str]], fetched_at: datetime) -> None:
        rows = [
            {
                "symbol": s,
                "price": str(p),
                "at": codec.timestamp(at),
                "fetched_at": codec.timestamp(fetched_at),
                "source": source,
            }
            for s, p, at, source in quotes
        ]
        if rows:
            self.db["quotes"].upsert_all(rows, pk="symbol")  # inside the caller's transaction

    def cached_quotes(self, symbols: list[str]) -> dict[str, tuple[Decimal, datetime]]:
        if not symbols:
            return {}
        marks = ",".join("?" * len(symbols))
        rows = self._rows(f"select symbol, price, at from quotes where symbol in ({marks})", symbols)
        return {r["symbol"]: (codec.decimal(r["price"]), codec.moment(r["at"])) for r in rows}

    def audit_entries(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._rows("select * from audit_log order by id")]
