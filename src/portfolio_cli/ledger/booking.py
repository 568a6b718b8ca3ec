"""Writing records. Every write happens inside ``Ledger.transaction`` and is logged for audit."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from portfolio_cli.engine.records import (
    Amendment,
    Order,
    OrderEnd,
    CashFlow,
    Close,
    CloseReason,
    FlowKind,
    MarginChange,
    Portfolio,
    RebalanceEvent,
    Snapshot,
    Trade,
    Void,
)
from portfolio_cli.errors import LedgerFailure
from portfolio_cli.ledger import codec, rowmap
from portfolio_cli.ledger.migrations import (
    CLOSED_DAY_TRIGGERS,
    CLOSED_SPAN_TRIGGERS,
    FLOW_DAY_TRIGGERS,
    refill_closed_spans,
    refresh_closed_days,
)
from portfolio_cli.ledger.queries import ID_CHUNK, Queries

if TYPE_CHECKING:
    from portfolio_cli.engine.booking import Booked, Booking, Entry


class Writes(Queries):
    """The ledger's writes (records, checks, snapshots); they read through ``Queries`` to refuse
    what would break a record already booked."""

    _totals_deferred = False  # inside ``totals_deferred``
    _flow_sums: dict[tuple, list] | None = None  # flows and first flows per day and group, not yet written
    _untotalled: set[int] = set()  # there: the trades whose totals are to be summed at its end,
    _closed_days: set[tuple[int, str]] = set()  # and the days (portfolio, YYYY-MM-DD) to write afresh,
    _spanned: set[int] = set()  # and the portfolios whose closed spans to build again

    def book(self, portfolio: Portfolio | None, booking: Booking) -> Booked:
        """Write a booking the engine decided, in its order, inside the caller's transaction: the one
        write path of every command. Each entry's flows carry its trade's id (a new trade's, once
        written). Snapshots may belong to several portfolios (``portfolio`` None)."""
        from portfolio_cli.engine.booking import Booked, CheckMark, RebalanceLink  # writes only: a read pays nothing

        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        if portfolio is not None and len(booking.entries) >= BULK_ENTRIES and all(map(_plain, booking.entries)):
            rows = self.bulk_rows()
            ids = [rows.entry(entry) for entry in booking.entries]
            booked = self.book_bulk(portfolio, rows)
            return Booked(tuple(ids), booked.stale_days, booked.rewound_to)
        ids = []
        for entry in booking.entries:
            record = entry.record
            if isinstance(record, RebalanceEvent):
                ids.append(self.add_rebalance(record))
                continue
            if isinstance(record, RebalanceLink):
                self.set_rebalance_trades(record.rebalance_id, list(record.trades))
                ids.append(record.rebalance_id)
                continue
            if portfolio is None:
                raise ValueError("a booking of records needs its portfolio")
            trade_id: int | None
            if isinstance(record, Trade):
                forced = record.forced or bool(entry.overridden)
                row_id = trade_id = self.add_trade(portfolio, record, forced, record.id if entry.keep_id else None)
            elif isinstance(record, Close):
                row_id, trade_id = self.add_close(portfolio, record), record.trade_id
            elif isinstance(record, MarginChange):
                row_id, trade_id = self.add_margin_change(portfolio, record), record.trade_id
            elif isinstance(record, Amendment):
                row_id, trade_id = self.add_amendment(portfolio, record), record.trade_id
            elif isinstance(record, Order):
                row_id, trade_id = self.add_order(portfolio, record), None
            elif isinstance(record, OrderEnd):
                row_id, trade_id = self.add_order_end(portfolio, record), record.trade_id
            elif isinstance(record, CashFlow):
                row_id = self._add_flow(portfolio, record)
                trade_id = record.trade_id
            elif isinstance(record, Void):
                row_id, trade_id = self.add_void(portfolio, record), None
            elif isinstance(record, CheckMark):
                row_id, trade_id = self.record_check(portfolio, record.through, record.events), None
            else:
                raise TypeError(f"cannot book {record!r}")
            for flow in entry.flows:
                self._add_flow(portfolio, flow if flow.trade_id else _with_trade(flow, trade_id))
            if entry.overridden:
                which = {"cash_flow_id": row_id} if isinstance(record, CashFlow) else {"trade_id": trade_id}
                self.audit("rule override", portfolio.id, {**which, "rules": list(entry.overridden)})
            if entry.off_market:
                which = (
                    {"close_id": row_id} if isinstance(record, Close)
                    else {"order_id": row_id} if isinstance(record, Order)
                    else {"trade_id": trade_id}
                )  # fmt: skip
                self.audit("off-market price", portfolio.id, {**which, "detail": entry.off_market})
            ids.append(row_id)
        checked = any(isinstance(e.record, CheckMark) for e in booking.entries)
        stale, rewound = self._invalidate(portfolio, booking.earliest, checked)
        if booking.snapshots:
            self.save_snapshots(list(booking.snapshots))
        return Booked(tuple(ids), stale, rewound)

    def bulk_rows(self) -> BulkRows:
        """An empty set of rows to book in bulk (``book_bulk``), numbering trades after the ledger's."""
        return BulkRows(
            {
                table: self.conn.execute(f"select coalesce(max(id), 0) + 1 from {table}").fetchone()[0]
                for table in BULK_TABLES
            }
        )

    def book_bulk(self, portfolio: Portfolio, rows: BulkRows) -> Booked:
        """Many fills and flows at once (an import): the rows ``book`` writes one by one, with the ids
        SQLite would give them (the next after the largest, or the kept one), written with
        ``executemany`` and audited with one entry per table naming the ids, not one per row. The
        booking invalidates derived state from its earliest record, as ``book`` does."""
        from portfolio_cli.engine.booking import Booked

        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        stale, rewound = self._invalidate(portfolio, rows.earliest)
        if not self._totals_deferred:
            self._flow_sums = None
        # The triggers that keep each trade's totals would cost an import of a million trades more
        # than its own writes: they are off while its rows go in (inside this transaction: a failure
        # rolls them back too), and the totals of the trades it touched are summed again at once.
        paused = [] if self._totals_deferred else self._pause_totals()
        for table in BULK_TABLES:  # trades first: the others refer to them
            written = rows.tables[table]
            if not written:
                continue
            columns = BULK_COLUMNS[table]
            # The portfolio is the same on every row: written into the statement, not bound per row.
            owned = "portfolio_id" in columns
            names = ("id", *columns) if table == "trades" else columns
            marks = ["?"] * len(names)
            if owned:
                marks[names.index("portfolio_id")] = str(int(portfolio.id))
            if table == "trades":  # kept or numbered here (an entry's flows carry the id)
                given = _runs([row[0] for row in written])
            else:  # numbered by SQLite, as one by one: the next after the largest, in order
                given = [[rows.first[table], rows.first[table] + len(written) - 1]]
            _insert_rows(self.conn, table, names, marks, written)
            self.audit(BULK_ACTIONS[table], portfolio.id, {"table": table, "ids": given})
        # The totals of the trades this booking opens are folded from its own rows, here (a new
        # trade has none to replace), with the days their closes count in; those of the trades it
        # closes or pays for that it did not open (or that the fold leaves to SQL) are summed again
        # from the ledger, and those days' statistics written afresh: now, or once at the end of
        # ``totals_deferred``.
        totals, touched = fold_totals(portfolio.id, rows)
        for group in totals:
            _insert_rows(self.conn, "trade_totals", TOTALS_COLUMNS, ["?"] * len(TOTALS_COLUMNS), group)
        days = {(portfolio.id, row[9][:10]) for group in totals for row in group if row[9] and row[8] >= row[7]}
        self._sum_bulk_flows(portfolio, rows, totals)
        if self._totals_deferred:
            self._untotalled |= touched
            self._closed_days |= days
            self._spanned.add(portfolio.id)
        else:
            self._total_trades(touched)
            refresh_closed_days(self.conn, sorted(days))
            refill_closed_spans(self.conn, [portfolio.id])
            self._write_flow_sums()
            for (sql,) in paused:
                self.conn.execute(sql)
        return Booked((), stale, rewound)

    @contextmanager
    def totals_deferred(self) -> Iterator[None]:
        """Inside the caller's transaction, sum the totals of the trades that its bookings touch but do
        not fold themselves (``fold_totals``) once at the end, not booking by booking (a large import;
        outside ``indexes_deferred``, so that the indexes are back when they are summed): the totals'
        triggers stay off until then, and every trade a record is written for meanwhile is noted."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        paused = self._pause_totals()
        self._totals_deferred, self._untotalled, self._closed_days = True, set(), set()
        self._flow_sums, self._spanned = None, set()
        try:
            yield
            touched, days, spanned = self._untotalled, self._closed_days, self._spanned
        finally:
            self._totals_deferred, self._untotalled, self._closed_days = False, set(), set()
        spanned |= self._portfolios_of(touched)
        self._total_trades(touched)
        refresh_closed_days(self.conn, sorted(days))
        refill_closed_spans(self.conn, sorted(spanned))
        self._write_flow_sums()
        for (sql,) in paused:
            self.conn.execute(sql)

    def _untotal(self, trade_id: int | None) -> None:
        """Inside ``totals_deferred``, note a trade a record was written for one by one (its totals'
        triggers are off): its totals are summed at the end."""
        if self._totals_deferred and trade_id is not None:
            self._untotalled.add(trade_id)

    def _pause_totals(self) -> list[tuple[str]]:
        """Drop the triggers that keep ``trade_totals`` as records are inserted; returns their SQL."""
        marks = ", ".join("?" * len(TOTALS_TRIGGERS))
        paused = self.conn.execute(
            f"select sql from sqlite_master where type = 'trigger' and name in ({marks})", TOTALS_TRIGGERS
        ).fetchall()
        for name in TOTALS_TRIGGERS:
            self.conn.execute(f"drop trigger if exists {name}")
        return paused

    def _total_trades(self, trade_ids: set[int]) -> None:
        """Write the totals of these trades (``migrations.m016_trade_totals``) afresh from their live
        records, in one statement; a sum beyond 64-bit integers leaves the figures NULL (the report
        then folds the records, as for any total that is not an exact integer)."""
        if not trade_ids:
            return
        conn = self.conn
        conn.execute("create temp table if not exists totalled (trade_id integer primary key)")
        conn.execute("delete from temp.totalled")
        conn.executemany("insert into temp.totalled values (?)", [(i,) for i in trade_ids])
        days_sql = (
            "select distinct portfolio_id, substr(last_close, 1, 10) from trade_totals "
            "where trade_id in (select trade_id from temp.totalled) and last_close is not null"
        )
        days = {(pid, day) for pid, day in conn.execute(days_sql)}  # of the closes before and after
        firsts_sql = (
            "select portfolio_id, first_flow_at, strategy, symbol, side from trade_totals "
            "where trade_id in (select trade_id from temp.totalled) and first_flow_at is not null"
        )
        firsts = conn.execute(firsts_sql).fetchall()  # where their first flows were
        conn.execute("delete from trade_totals where trade_id in (select trade_id from temp.totalled)")
        try:
            conn.execute(TOTALS_SQL.format(closed="c.closed", net="f.net", funding="f.funding"))
        except sqlite3.OperationalError as exc:
            if "overflow" not in str(exc):
                raise
            conn.execute(TOTALS_SQL.format(closed="null", net="null", funding="null"))
        days.update((pid, day) for pid, day in conn.execute(days_sql))
        refresh_closed_days(conn, sorted(days))
        # Their first flows moved: the flows per day count them where they are now (unless their
        # triggers are on, and have).
        active = "select 1 from sqlite_master where type = 'trigger' and name = 'flow_days_first'"
        if conn.execute(active).fetchone() is not None:
            conn.execute("delete from temp.totalled")
            return
        sums = self._flow_sums if self._flow_sums is not None else {}
        for change, moved in ((-1, firsts), (1, conn.execute(firsts_sql).fetchall())):
            for pid, at, strategy, symbol, side in moved:
                sums.setdefault((pid, at[:10], strategy is not None, strategy or "", symbol, side), [0, 0])[1] += change
        self._flow_sums = sums
        conn.execute("delete from temp.totalled")

    def _portfolios_of(self, trade_ids: set[int]) -> set[int]:
        """The portfolios of these trades."""
        ids = sorted(trade_ids)
        size = max(1, min(ID_CHUNK, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)))
        found: set[int] = set()
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            sql = f"select distinct portfolio_id from trades where id in ({','.join('?' * len(chunk))})"
            found.update(pid for (pid,) in self.conn.execute(sql, chunk))
        return found

    def _sum_bulk_flows(self, portfolio: Portfolio, rows: BulkRows, totals: list[list[tuple]]) -> None:
        """Add a bulk booking's flows to the sums per day and group that ``_write_flow_sums`` writes
        (the triggers that keep ``flow_days`` are off meanwhile), as those triggers would: in whole
        units, the flows of the portfolio's own trades only; and the first flows of the trades it
        opens whose totals it folded (``fold_totals``)."""
        groups = {row[0]: (row[13], row[1], row[2]) for row in rows.trades}
        unknown = sorted({row[3] for row in rows.cash_flows if row[3] is not None and row[3] not in groups})
        size = max(1, min(500, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) - 1))
        for start in range(0, len(unknown), size):
            chunk = unknown[start : start + size]
            listed = ",".join("?" * len(chunk))
            sql = f"select id, strategy, symbol, side from trades where portfolio_id = ? and id in ({listed})"
            for trade_id, strategy, symbol, side in self.conn.execute(sql, [portfolio.id, *chunk]):
                groups[trade_id] = (strategy, symbol, side)
        sums = self._flow_sums if self._flow_sums is not None else {}
        for _, amount, at, trade_id, _ in rows.cash_flows:
            group = groups.get(trade_id) if trade_id is not None else None
            if group is None:
                continue
            strategy, symbol, side = group
            entry = sums.setdefault((portfolio.id, at[:10], strategy is not None, strategy or "", symbol, side), [0, 0])
            entry[0] += _units(amount)
        for folded in totals:  # TOTALS_COLUMNS: portfolio, symbol, side, strategy … first flow
            for row in folded:
                if row[16] is not None:
                    key = (row[1], row[16][:10], row[4] is not None, row[4] or "", row[2], row[3])
                    sums.setdefault(key, [0, 0])[1] += 1
        self._flow_sums = sums

    def _write_flow_sums(self) -> None:
        """Add the pending sums of flows and first flows (``_sum_bulk_flows``) to ``flow_days`` and
        ``flow_months``."""
        added = self._flow_sums or {}
        self._flow_sums = None
        for table, period, cut in (("flow_days", "day", 10), ("flow_months", "month", 7)):
            self.conn.executemany(
                f"insert into {table} (portfolio_id, {period}, tagged, strategy, symbol, side, amount, first_flows) "
                "values (?, ?, ?, ?, ?, ?, ?, ?) on conflict do update set amount = amount + excluded.amount, "
                "first_flows = first_flows + excluded.first_flows",
                [
                    (pid, day[:cut], *group, _bindable(amount), first)
                    for (pid, day, *group), (amount, first) in added.items()
                ],
            )

    @contextmanager
    def indexes_deferred(self, tables: tuple[str, ...]) -> Iterator[None]:
        """Inside the caller's transaction, build the non-unique indexes of ``tables`` once at the end,
        from their rows (one sort), instead of adding every row to each of them: for a large import
        into a small ledger. They are dropped first and created again with their own SQL, all in the
        one transaction: an error or a kill rolls the drop back with everything else. A unique index
        stays, and refuses a duplicate as it is written."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        deferred = [
            (name, sql)
            for table in tables
            for _, name, unique, origin, _ in self.conn.execute(f"pragma index_list({table})").fetchall()
            if not unique and origin == "c"  # made by CREATE INDEX (not a key's)
            for (sql,) in self.conn.execute("select sql from sqlite_master where type = 'index' and name = ?", [name])
        ]
        for name, _ in deferred:
            self.conn.execute(f'drop index "{name}"')
        yield
        for _, sql in deferred:
            self.conn.execute(sql)

    def _invalidate(
        self, portfolio: Portfolio | None, earliest: datetime | None, checked: bool = False
    ) -> tuple[tuple[date, ...], datetime | None]:
        """A record dated at or before derived state invalidates it (DESIGN §2, time): the snapshots
        valued at or after ``earliest`` (the booking's earliest record) are dropped (the command
        rebuilds them once committed), and the check watermark rewinds to the record, so the next
        ``check`` replays from it. ``check``'s own booking (``checked``) records its watermark itself."""
        if portfolio is None or earliest is None:
            return (), None
        stale = self.drop_snapshots_from(portfolio, earliest)
        rewound = None
        last = self.last_check(portfolio)
        if last is not None and earliest < last and not checked:
            row = {
                "portfolio_id": portfolio.id,
                "through": codec.timestamp(earliest),
                "ran_at": codec.timestamp(self._now or earliest),
                "events": 0,
            }
            self._write("checks", row, "rewind check", portfolio.id)
            rewound = earliest
        return stale, rewound

    def drop_snapshots_from(self, portfolio: Portfolio, moment: datetime) -> tuple[date, ...]:
        """Drop the portfolio's snapshots valued at or after ``moment``; returns their days."""
        days = tuple(
            date.fromisoformat(day)
            for (day,) in self.conn.execute(
                "select day from snapshots where portfolio_id = ? and taken_at >= ? order by day",
                [portfolio.id, codec.timestamp(moment)],
            )
        )
        if days:
            params = [portfolio.id, codec.timestamp(moment)]
            self.conn.execute(
                "delete from snapshot_positions where snapshot_id in "
                "(select id from snapshots where portfolio_id = ? and taken_at >= ?)",
                params,
            )
            self.conn.execute("delete from snapshots where portfolio_id = ? and taken_at >= ?", params)
            details = {"from": codec.timestamp(moment), "days": [d.isoformat() for d in days]}
            self.audit("stale snapshots", portfolio.id, details)
        return days

    def _add_flow(self, portfolio: Portfolio, flow: CashFlow) -> int:
        return self.add_cash_flow(portfolio, flow.kind, flow.amount, flow.at, flow.trade_id, flow.note)

    def create_portfolio(self, name: str, at: datetime) -> Portfolio:
        if self.find_portfolio(name) is not None:
            raise LedgerFailure(f"portfolio {name!r} already exists")
        row_id = self._write("portfolios", {"name": name, "created_at": codec.timestamp(at)}, "create portfolio", None)
        return Portfolio(row_id, name, at)

    def date_creation(self, portfolio: Portfolio, at: datetime) -> Portfolio:
        """Date the creation of a portfolio this transaction created, and that holds no starting
        balance of its own, at ``at`` (an import creates it before it has read its earliest record)."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        old, new = codec.timestamp(portfolio.created_at), codec.timestamp(at)
        self.conn.execute("update portfolios set created_at = ? where id = ?", [new, portfolio.id])
        self.audit("date creation", portfolio.id, {"from": old, "to": new})
        return Portfolio(portfolio.id, portfolio.name, at)

    def move_creation_back(self, portfolio: Portfolio, at: datetime) -> Portfolio:
        """Date a portfolio's creation, and its starting balance with it, earlier: every record stays
        after it, so nothing booked changes meaning. Logged for audit like any write."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        if at >= portfolio.created_at:
            raise LedgerFailure(f"{portfolio.name} can only be dated earlier than its creation")
        old, new = codec.timestamp(portfolio.created_at), codec.timestamp(at)
        self.conn.execute("update portfolios set created_at = ? where id = ?", [new, portfolio.id])
        self.conn.execute(
            "update cash_flows set at = ? where portfolio_id = ? and kind = ? and at = ? and note = 'starting balance'",
            [new, portfolio.id, FlowKind.DEPOSIT.value, old],
        )
        self.audit("move creation back", portfolio.id, {"from": old, "to": new})
        return Portfolio(portfolio.id, portfolio.name, at)

    def add_cash_flow(
        self,
        portfolio: Portfolio,
        kind: FlowKind,
        amount: Decimal,
        at: datetime,
        trade_id: int | None = None,
        note: str | None = None,
    ) -> int:
        row = flow_row(portfolio, CashFlow(0, kind, amount, at, trade_id, note))
        self._untotal(trade_id)
        if self._totals_deferred and trade_id is not None:  # the flows per day, as its trigger would
            found = self.conn.execute(
                "select strategy, symbol, side from trades where id = ? and portfolio_id = ?", [trade_id, portfolio.id]
            ).fetchone()
            if found is not None:
                strategy, symbol, side = found
                sums = self._flow_sums if self._flow_sums is not None else {}
                key = (portfolio.id, row["at"][:10], strategy is not None, strategy or "", symbol, side)
                sums.setdefault(key, [0, 0])[0] += _units(row["amount"])
                self._flow_sums = sums
        return self._write("cash_flows", row, f"record {kind.value}", portfolio.id)

    def add_trade(self, portfolio: Portfolio, trade: Trade, forced: bool, trade_id: int | None = None) -> int:
        """Record a trade; ``trade_id`` keeps an imported trade's id (the caller checks it is free)."""
        row = {**({"id": trade_id} if trade_id is not None else {}), **trade_row(portfolio, trade, forced)}
        row_id = self._write("trades", row, "open trade", portfolio.id)
        self._untotal(row_id)
        return row_id

    def add_close(self, portfolio: Portfolio, close: Close) -> int:
        row = close_row(close)
        action = "close trade" if close.reason is CloseReason.MANUAL else f"close trade ({close.reason.value})"
        self._untotal(close.trade_id)
        return self._write("closes", row, action, portfolio.id)

    def add_rebalance(self, event: RebalanceEvent) -> int:
        return self._write("rebalances", rowmap.rebalance_row(event), "rebalance", event.portfolio_id)

    def set_rebalance_trades(self, rebalance_id: int, trades: list[dict[str, Any]]) -> None:
        """Record the trades a rebalance booked (they are booked after its row, to carry its id)."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        self.conn.execute("update rebalances set trades = ? where id = ?", [json.dumps(trades), rebalance_id])
        self.audit("rebalance trades", None, {"rebalance_id": rebalance_id, "trades": trades})

    def add_margin_change(self, portfolio: Portfolio, change: MarginChange) -> int:
        row = margin_row(change)
        return self._write("margin_changes", row, "change margin", portfolio.id)

    def add_amendment(self, portfolio: Portfolio, amendment: Amendment) -> int:
        row = {
            "trade_id": amendment.trade_id,
            "at": codec.timestamp(amendment.at),
            "stop_loss": codec.optional_money(amendment.stop_loss),
            "take_profit": codec.optional_money(amendment.take_profit),
            "trailing_pct": codec.optional_money(amendment.trailing_pct),
            "reference": codec.optional_money(amendment.reference),
            "removed": ",".join(amendment.removed),
            "note": amendment.note,
        }
        return self._write("amendments", row, "amend trade", portfolio.id)

    def add_void(self, portfolio: Portfolio, void: Void) -> int:
        """Record a void and the rows it takes out of the fold (each row once: the key refuses a second)."""
        row = {
            "portfolio_id": portfolio.id,
            "at": codec.timestamp(void.at),
            "record": void.record.value,
            "record_id": void.record_id,
            "record_at": codec.timestamp(void.record_at),
            "reason": void.reason,
            "summary": void.summary,
        }
        void_id = self._write("voids", row, f"void {void.record.value}", portfolio.id)
        self.conn.executemany(
            "insert into voided_rows (tbl, row_id, void_id) values (?, ?, ?)",
            [(rowmap.VOIDED_TABLES[kind], row_id, void_id) for kind, row_id in void.rows],
        )
        return void_id

    def add_order(self, portfolio: Portfolio, order: Order) -> int:
        row = {
            "portfolio_id": portfolio.id,
            "symbol": order.symbol,
            "side": order.side.value,
            "kind": order.kind.value,
            "margin_mode": order.margin_mode.value if order.margin_mode else None,
            "leverage": order.leverage,
            "order_type": order.order_type.value,
            "price": codec.money(order.price),
            "qty": codec.money(order.qty),
            "reserved": codec.money(order.reserved),
            "placed_at": codec.timestamp(order.placed_at),
            "expires_at": codec.timestamp(order.expires_at) if order.expires_at else None,
            "stop_loss": codec.optional_money(order.stop_loss),
            "take_profit": codec.optional_money(order.take_profit),
            "trailing_pct": codec.optional_money(order.trailing_pct),
            "strategy": order.strategy,
            "note": order.note,
        }
        return self._write("orders", row, "place order", portfolio.id)

    def add_order_end(self, portfolio: Portfolio, end: OrderEnd) -> int:
        row = {
            "order_id": end.order_id,
            "at": codec.timestamp(end.at),
            "status": end.status.value,
            "trade_id": end.trade_id,
            "reason": end.reason,
        }
        return self._write("order_ends", row, f"order {end.status.value}", portfolio.id)

    def record_check(self, portfolio: Portfolio, through: datetime, events: int) -> int:
        row = {
            "portfolio_id": portfolio.id,
            "through": codec.timestamp(through),
            "ran_at": codec.timestamp(self._now or through),
            "events": events,
        }
        return self._write("checks", row, "check", portfolio.id)

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


def _units(text: str) -> int | float:
    """A money text in whole 1e-8 units, as ``codec.units_sql`` takes it in SQL (infinite where it
    would not fit)."""
    point = text.find(".")
    if point < 0 or "e" in text or "E" in text:
        value = Decimal(text).scaleb(8)
        return int(value) if value == value.to_integral_value() and abs(value) < 2**63 else float("inf")
    if len(text) - point - 1 > 8 or point > 11:
        return float("inf")
    return int(text[:point] + (text[point + 1 :] + "00000000")[:8])


def _bindable(units: int | float) -> int | float:
    """A sum of units SQLite can hold: beyond 64 bits, a float (which the report refuses)."""
    return units if units.__class__ is float or -(2**63) <= units < 2**63 else float(units)


def _with_trade(flow: CashFlow, trade_id: int | None) -> CashFlow:
    return replace(flow, trade_id=trade_id)


# The triggers that keep ``trade_totals`` as records are inserted (``migrations.m016_trade_totals``).
# With them, those that keep the days' closed-trade statistics from the totals (``m017_closed_days``).
# With them, those that keep the days' closed-trade statistics and the closed trades' spans from the
# totals, and the flows per day (``m017_closed_days``, ``m018_closed_spans``, ``m019_flow_days``).
TOTALS_TRIGGERS = (
    "trade_totals_open",
    "trade_totals_close",
    "trade_totals_flow",
    *CLOSED_DAY_TRIGGERS,
    *CLOSED_SPAN_TRIGGERS,
    *FLOW_DAY_TRIGGERS,
)
_UNITS, _MICROS = codec.units_sql, codec.micros_sql
# Each trade's totals as the triggers keep them, folded at once from its live records: its latest
# close by time, then id (one max() over both, so that SQLite takes its reason from that row).
TOTALS_SQL = f"""
    insert into trade_totals (trade_id, portfolio_id, symbol, side, strategy, opened_at, opened_us, qty, closed,
        last_close, last_close_us, last_close_id, exit_reason, net, net_flows, funding, first_flow_at, last_flow_at)
    select t.id, t.portfolio_id, t.symbol, t.side, t.strategy, t.opened_at, {_MICROS("t.opened_at")}, {_UNITS("t.qty")},
        coalesce({{closed}}, 0), c.last_close, {_MICROS("c.last_close")}, c.last_close_id, c.reason,
        coalesce({{net}}, 0), coalesce(f.net_flows, 0), coalesce({{funding}}, 0), f.first_at, f.last_at
    from live_trades t
    left join (
        select trade_id, closed, reason, substr(latest, 1, length(latest) - 12) as last_close,
            cast(substr(latest, -12) as integer) as last_close_id
        from (select trade_id, sum({_UNITS("qty")}) as closed, max(closed_at || printf('%012d', id)) as latest, reason
              from live_closes where trade_id in (select trade_id from temp.totalled) group by trade_id)
    ) c on c.trade_id = t.id
    left join (
        select trade_id, portfolio_id, sum(iif(kind = 'funding', 0, {_UNITS("amount")})) as net,
            sum(kind != 'funding') as net_flows, sum(iif(kind = 'funding', {_UNITS("amount")}, 0)) as funding,
            min(at) as first_at, max(at) as last_at
        from (select f.* from temp.totalled x join trades t on t.id = x.trade_id
              join live_cash_flows f on f.portfolio_id = t.portfolio_id and f.trade_id = x.trade_id)
        group by trade_id, portfolio_id
    ) f on f.trade_id = t.id and f.portfolio_id = t.portfolio_id
    where t.id in (select trade_id from temp.totalled)"""

# A booking of at least this many fills and flows, and nothing else, is written in bulk (``_book_in_bulk``).
BULK_ENTRIES = 100
BULK_TABLES = ("trades", "closes", "margin_changes", "cash_flows")
BULK_ACTIONS = {
    "trades": "open trades",
    "closes": "close trades",
    "margin_changes": "change margins",
    "cash_flows": "record cash flows",
}


class BulkRows:
    """The rows of a bulk booking (``Writes.book_bulk``), per table in booking order, in the ledger's
    encoding, without the portfolio (the same on every row): built from entries (``entry``), or, for
    an import's fills whose every value is already the ledger's text (``open_fill``, ``close_fill``),
    from those values, skipping records and entries built only to be encoded again."""

    def __init__(self, next_ids: dict[str, int]):
        self.first = next_ids  # per table, the id its first row here gets (the next after the ledger's)
        self.next_trade = next_ids["trades"]  # the id a trade the ledger numbers gets
        self.tables: dict[str, list[tuple]] = {table: [] for table in BULK_TABLES}
        self.trades, self.closes = self.tables["trades"], self.tables["closes"]
        self.margin_changes, self.cash_flows = self.tables["margin_changes"], self.tables["cash_flows"]
        self.earliest: datetime | None = None  # the earliest record's time: derived state after it is stale

    def entry(self, entry: Entry) -> int:
        """Add an entry's rows (a fill, margin change or flow, with its flows); returns its row's id."""
        record = entry.record
        at = entry.at
        if at is not None and (self.earliest is None or at < self.earliest):
            self.earliest = at
        trade_id: int | None
        if isinstance(record, Trade):
            row_id = trade_id = record.id if entry.keep_id else self.next_trade
            self.next_trade = max(self.next_trade, row_id + 1)
            self.trades.append((row_id, *trade_fields(record, record.forced)))
        elif isinstance(record, Close):
            row_id, trade_id = self.first["closes"] + len(self.closes), record.trade_id
            self.closes.append(close_values(record))
        elif isinstance(record, MarginChange):
            row_id, trade_id = self.first["margin_changes"] + len(self.margin_changes), record.trade_id
            self.margin_changes.append(margin_values(record))
        else:
            assert isinstance(record, CashFlow)
            row_id, trade_id = self.first["cash_flows"] + len(self.cash_flows), record.trade_id
            self.cash_flows.append(flow_fields(record))
        for flow in entry.flows:
            self.cash_flows.append(flow_fields(flow if flow.trade_id else _with_trade(flow, trade_id)))
        return row_id

    def __bool__(self) -> bool:
        return any(self.tables.values())

    def open_fill(self, trade_id: int, at: datetime, fields: tuple) -> None:
        """The rows of ``open_entry(trade, keep_id=True)`` for a trade whose ``trade_fields`` are
        ``fields`` (every value the ledger's text: ``codec.is_money``, ``codec.is_timestamp``): the
        trade and its entry fee ``−fee``."""
        if self.earliest is None or at < self.earliest:
            self.earliest = at
        if trade_id >= self.next_trade:
            self.next_trade = trade_id + 1
        self.trades.append((trade_id, *fields))
        self.cash_flows.append((_FEE, codec.negated_money(fields[8]), fields[9], trade_id, "entry fee"))

    def close_fill(self, at: datetime, values: tuple, forced_out: bool) -> None:
        """The rows of ``close_entry(close)`` for a close whose ``close_values`` are ``values``, every
        value the ledger's text: the close, its gross realized PnL and its fee ``−fee`` (a liquidation
        fee when the margin rules closed the position)."""
        if self.earliest is None or at < self.earliest:
            self.earliest = at
        trade_id, fee, pnl, stamp = values[0], values[4], values[5], values[6]
        kind, note = (_LIQUIDATION_FEE, "liquidation fee") if forced_out else (_FEE, "exit fee")
        self.closes.append(values)
        self.cash_flows.append((_REALIZED_PNL, pnl, stamp, trade_id, None))
        self.cash_flows.append((kind, codec.negated_money(fee), stamp, trade_id, note))


_FEE, _LIQUIDATION_FEE, _REALIZED_PNL = FlowKind.FEE.value, FlowKind.LIQUIDATION_FEE.value, FlowKind.REALIZED_PNL.value


TOTALS_COLUMNS = (
    "trade_id", "portfolio_id", "symbol", "side", "strategy", "opened_at", "opened_us", "qty", "closed", "last_close",
    "last_close_us", "last_close_id", "exit_reason", "net", "net_flows", "funding", "first_flow_at", "last_flow_at",
)  # fmt: skip
# Money text that ``codec.units_sql`` turns into whole 1e-8 units exactly, its digits without the
# point (below 10^10: 64 bits hold it), the form the ledger writes; a time in the form
# ``codec.timestamp`` writes.
_UNIT_FORM = r"-?[0-9]{1,10}\.[0-9]{8}"
_UNIT_TEXT, _UNIT_LINES = re.compile(_UNIT_FORM), re.compile(rf"{_UNIT_FORM}(?:\n{_UNIT_FORM})*")
_TIMESTAMP = re.compile(codec.TIMESTAMP_FORM)
_TIMESTAMP_LINES = re.compile(rf"{codec.TIMESTAMP_FORM}(?:\n{codec.TIMESTAMP_FORM})*")
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_INT64 = 1 << 63
_FUNDING = FlowKind.FUNDING.value


def fold_totals(portfolio_id: int, rows: BulkRows) -> tuple[list[list[tuple]], set[int]]:
    """The ``trade_totals`` rows of the trades a bulk booking opens, folded from its own rows as
    ``TOTALS_SQL`` folds them from the ledger (which it cannot be told from: a test holds them to
    it), in two groups, trades closed and not; and the trades whose totals are left to
    ``TOTALS_SQL``: those its closes and flows belong to that it does not open, and those with a
    value in a form other than the ledger's own (``_UNIT_TEXT``, ``_TIMESTAMP``) or sums that 64
    bits might not hold. Nothing of a booking's rows can be voided yet: every one is new.
    (Hot: a million trades pass through here. Each column's values are checked at once, and one by
    one only if one of them is not in the ledger's form.)"""
    trades, closes, flows = rows.trades, rows.closes, rows.cash_flows
    amounts, times = _UNIT_TEXT.fullmatch, _TIMESTAMP.fullmatch
    qty_checked = _all_match(_UNIT_LINES, [row[6] for row in trades])
    opened_checked = _all_match(_TIMESTAMP_LINES, [row[10] for row in trades])
    opened: dict[int, list] = {}
    others: set[int] = set()
    for row in trades:
        trade_id, qty, at = row[0], row[6], row[10]
        us = _micros(at) if opened_checked or times(at) else None
        if us is None or not (qty_checked or amounts(qty)) or trade_id in opened:
            others.add(trade_id)
            continue
        # TOTALS_COLUMNS, then the sum of the magnitudes of the trade's closes and flows
        opened[trade_id] = [trade_id, portfolio_id, row[1], row[2], row[13], at, us, int(qty.replace(".", "")), 0,
                            None, None, None, None, 0, 0, 0, None, None, 0]  # fmt: skip
    get = opened.get
    close_qty_checked = _all_match(_UNIT_LINES, [row[1] for row in closes])
    closed_checked = _all_match(_TIMESTAMP_LINES, [row[6] for row in closes])
    close_id = rows.first["closes"] - 1
    for trade_id, qty, _, _, _, _, at, _, reason in closes:
        close_id += 1
        totals = get(trade_id)
        if totals is None or not ((close_qty_checked or amounts(qty)) and (closed_checked or times(at))):
            others.add(trade_id)
            continue
        units = int(qty.replace(".", ""))
        totals[8] += units
        totals[18] += abs(units)
        # the latest close by time, then id: TOTALS_SQL's max(closed_at || printf('%012d', id))
        if totals[9] is None or at > totals[9] or at == totals[9] and close_id > totals[11]:
            totals[9], totals[11], totals[12] = at, close_id, reason
    amount_checked = _all_match(_UNIT_LINES, [row[1] for row in flows if row[3] is not None])
    for kind, amount, at, trade_id, _ in flows:
        if trade_id is None:
            continue
        totals = get(trade_id)
        if totals is None or not (amount_checked or amounts(amount)):
            others.add(trade_id)
            continue
        units = int(amount.replace(".", ""))
        if kind == _FUNDING:
            totals[15] += units
        else:
            totals[13] += units
            totals[14] += 1
        totals[18] += abs(units)
        if totals[16] is None or at < totals[16]:
            totals[16] = at
        if totals[17] is None or at > totals[17]:
            totals[17] = at
    closed: list[tuple] = []
    open_: list[tuple] = []
    for trade_id, totals in opened.items():
        if trade_id in others or totals.pop() >= _INT64:  # a sum SQLite's could overflow: summed there
            continue
        if totals[9] is None:
            open_.append(tuple(totals))
        elif (us := _micros(totals[9])) is None:
            others.add(trade_id)
        else:
            totals[10] = us
            closed.append(tuple(totals))
    return [group for group in (open_, closed) if group], others


def _all_match(lines: re.Pattern[str], texts: list[str]) -> bool:
    """Whether every one of ``texts`` is in the form that ``lines`` repeats, one per line: one match
    for them all (and no line break inside one of them)."""
    joined = "\n".join(texts)
    return joined.count("\n") == len(texts) - 1 and lines.fullmatch(joined) is not None


def _micros(text: str) -> int | None:
    """``codec.micros_sql`` of a time in the ledger's form (``_TIMESTAMP``): microseconds since 1970
    (None for a day there is not, which SQL reads otherwise)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    seconds = (moment.toordinal() - _EPOCH_DAY) * 86_400 + moment.hour * 3600 + moment.minute * 60 + moment.second
    return seconds * 1_000_000 + moment.microsecond


def _insert_rows(
    conn: sqlite3.Connection, table: str, names: tuple[str, ...], marks: list[str], rows: list[tuple], verb: str = ""
) -> None:
    """``insert into table (names) values (marks)`` for each row (its values bound to the ``?`` marks,
    in order). Binding a value costs Python's sqlite3 more than SQLite's own insert of it (None the
    most), and a million rows bind tens of millions of them: a column NULL on every row (and NULL by
    default) is left out, and one with the same text or integer on every row is written once, into
    the statement, as the portfolio is."""
    bound = [n for n, mark in enumerate(marks) if mark == "?"]  # the column each value of a row goes to
    nullable = _null_by_default(conn, table)
    fixed: dict[int, str | None] = {}  # by value of a row: None to leave its column out, else its literal
    for i, value in enumerate(rows[0]):
        if value is None:
            if names[bound[i]] in nullable and list(map(itemgetter(i), rows)).count(None) == len(rows):
                fixed[i] = None
        elif (literal := _literal(value)) is not None:
            column = list(map(itemgetter(i), rows))
            if column.count(value) == len(rows) and set(map(type, column)) == {type(value)}:
                fixed[i] = literal
    if fixed:
        kept = [i for i in range(len(bound)) if i not in fixed]
        if len(kept) > 1:
            rows = list(map(itemgetter(*kept), rows))
        else:  # (itemgetter of one index gives the value, not a tuple)
            rows = [(row[kept[0]],) for row in rows] if kept else [()] * len(rows)
        marks = list(marks)
        for i, literal in fixed.items():
            marks[bound[i]] = literal if literal is not None else ""
        names = tuple(name for name, mark in zip(names, marks, strict=True) if mark)
        marks = [mark for mark in marks if mark]
    conn.executemany(f"insert {verb} into {table} ({','.join(names)}) values ({','.join(marks)})", rows)


def _literal(value: object) -> str | None:
    """``value`` as an SQL literal, for plain text and integers (None for anything else)."""
    if value.__class__ is int:
        return str(value)
    if value.__class__ is str and len(value) <= 100 and value.isascii() and "\0" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def _null_by_default(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns of ``table`` that are NULL when a row gives them no value."""
    return {name for _, name, _, _, default, _ in conn.execute(f"pragma table_info({table})") if default is None}


def _plain(entry: Entry) -> bool:
    """An entry the bulk path writes: a fill, margin change or flow with nothing else to log."""
    return isinstance(entry.record, Trade | Close | MarginChange | CashFlow) and not (
        entry.overridden or entry.off_market
    )


def _runs(ids: list[int]) -> list[list[int]]:
    """``[[first, last], ...]`` runs of consecutive ids: an audit entry for 10,000 rows stays short."""
    runs: list[list[int]] = []
    for row_id in ids:
        if runs and row_id == runs[-1][1] + 1:
            runs[-1][1] = row_id
        else:
            runs.append([row_id, row_id])
    return runs


TRADE_COLUMNS = (
    "portfolio_id", "symbol", "side", "kind", "margin_mode", "leverage", "qty", "price", "price_usdt", "fee",
    "opened_at", "stop_loss", "take_profit", "strategy", "note", "forced", "trailing_pct",
)  # fmt: skip
CLOSE_COLUMNS = ("trade_id", "qty", "price", "price_usdt", "fee", "realized_pnl", "closed_at", "note", "reason")
MARGIN_COLUMNS = ("trade_id", "at", "amount", "mode")
FLOW_COLUMNS = ("portfolio_id", "kind", "amount", "at", "trade_id", "note")
BULK_COLUMNS = {
    "trades": TRADE_COLUMNS,
    "closes": CLOSE_COLUMNS,
    "margin_changes": MARGIN_COLUMNS,
    "cash_flows": FLOW_COLUMNS,
}


def trade_values(portfolio: Portfolio, trade: Trade, forced: bool) -> tuple:
    """A trade as the ledger stores it, in ``TRADE_COLUMNS`` order (the one encoding of a trade)."""
    return (portfolio.id, *trade_fields(trade, forced))


def trade_fields(trade: Trade, forced: bool) -> tuple:
    """``trade_values`` without the portfolio: the columns after ``portfolio_id``."""
    money, optional = codec.money, codec.optional_money
    return (
        trade.symbol,
        trade.side.value,
        trade.kind.value,
        trade.margin_mode.value if trade.margin_mode else None,
        trade.leverage,
        money(trade.qty),
        money(trade.price),
        money(trade.price_usdt),
        money(trade.fee),
        codec.timestamp(trade.opened_at),
        optional(trade.stop_loss),
        optional(trade.take_profit),
        trade.strategy,
        trade.note,
        int(forced),
        optional(trade.trailing_pct),
    )


def close_values(close: Close) -> tuple:
    money = codec.money
    return (
        close.trade_id,
        money(close.qty),
        money(close.price),
        money(close.price_usdt),
        money(close.fee),
        money(close.realized_pnl),
        codec.timestamp(close.closed_at),
        close.note,
        close.reason.value,
    )


def margin_values(change: MarginChange) -> tuple:
    return (
        change.trade_id,
        codec.timestamp(change.at),
        codec.money(change.amount),
        change.mode.value if change.mode else None,
    )


def flow_values(portfolio: Portfolio, flow: CashFlow) -> tuple:
    return (portfolio.id, *flow_fields(flow))


def flow_fields(flow: CashFlow) -> tuple:
    """``flow_values`` without the portfolio."""
    return (flow.kind.value, codec.money(flow.amount), codec.timestamp(flow.at), flow.trade_id, flow.note)


def trade_row(portfolio: Portfolio, trade: Trade, forced: bool) -> dict[str, Any]:
    return dict(zip(TRADE_COLUMNS, trade_values(portfolio, trade, forced), strict=True))


def close_row(close: Close) -> dict[str, Any]:
    return dict(zip(CLOSE_COLUMNS, close_values(close), strict=True))


def margin_row(change: MarginChange) -> dict[str, Any]:
    return dict(zip(MARGIN_COLUMNS, margin_values(change), strict=True))


def flow_row(portfolio: Portfolio, flow: CashFlow) -> dict[str, Any]:
    return dict(zip(FLOW_COLUMNS, flow_values(portfolio, flow), strict=True))
