"""Named, append-only schema migrations, applied whenever the ledger is opened.

Never edit a migration that has shipped: add a new one. Money columns are TEXT (see codec).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database


MIGRATION_SET = "portfolio_cli"
# The schema every migration below builds, as one script: a new ledger is created from it in one
# step (the migrations one by one cost ≈ 80 ms). tests/test_migrations.py fails when it differs from
# what the migrations build, and writes it anew with PORTFOLIO_WRITE_SCHEMA=1.
SCHEMA = Path(__file__).with_name("schema.sql")


def m001_initial(db: Database) -> None:
    db.table("portfolios").create(
        {"id": int, "name": str, "created_at": str}, pk="id", not_null={"name", "created_at"}, strict=True
    )
    db.table("portfolios").create_index(["name"], unique=True)
    db.table("trades").create(
        {
            "id": int,
            "portfolio_id": int,
            "symbol": str,
            "side": str,
            "kind": str,
            "margin_mode": str,
            "leverage": int,
            "qty": str,
            "price": str,
            "price_usdt": str,
            "fee": str,
            "opened_at": str,
            "stop_loss": str,
            "take_profit": str,
            "strategy": str,
            "note": str,
            "forced": int,
        },
        pk="id",
        not_null={
            "portfolio_id",
            "symbol",
            "side",
            "kind",
            "leverage",
            "qty",
            "price",
            "price_usdt",
            "fee",
            "opened_at",
            "forced",
        },
        foreign_keys=[("portfolio_id", "portfolios", "id")],
        strict=True,
    )
    db.table("cash_flows").create(
        {"id": int, "portfolio_id": int, "kind": str, "amount": str, "at": str, "trade_id": int, "note": str},
        pk="id",
        not_null={"portfolio_id", "kind", "amount", "at"},
        foreign_keys=[("portfolio_id", "portfolios", "id"), ("trade_id", "trades", "id")],
        strict=True,
    )
    db.table("closes").create(
        {
            "id": int,
            "trade_id": int,
            "qty": str,
            "price": str,
            "price_usdt": str,
            "fee": str,
            "realized_pnl": str,
            "closed_at": str,
            "note": str,
        },
        pk="id",
        not_null={"trade_id", "qty", "price", "price_usdt", "fee", "realized_pnl", "closed_at"},
        foreign_keys=[("trade_id", "trades", "id")],
        strict=True,
    )
    db.table("quotes").create(
        {"symbol": str, "price": str, "at": str, "fetched_at": str, "source": str},
        pk="symbol",
        not_null={"price", "at", "fetched_at", "source"},
        strict=True,
    )
    db.table("audit_log").create(
        {"id": int, "at": str, "command": str, "action": str, "portfolio_id": int, "details": str},
        pk="id",
        not_null={"at", "command", "action", "details"},
        strict=True,
    )
    db.table("cash_flows").create_index(["portfolio_id"])
    db.table("trades").create_index(["portfolio_id", "symbol"])
    db.table("closes").create_index(["trade_id"])


def m002_margin_candles_checks(db: Database) -> None:
    db.table("closes").add_column("reason", str, not_null_default="manual")
    db.table("margin_changes").create(
        {"id": int, "trade_id": int, "at": str, "amount": str, "mode": str},
        pk="id",
        not_null={"trade_id", "at", "amount"},
        foreign_keys=[("trade_id", "trades", "id")],
        strict=True,
    )
    db.table("margin_changes").create_index(["trade_id"])
    # Exchange candles, a cache: prices are exact decimal text like every other price.
    db.table("candles").create(
        {"symbol": str, "timeframe": str, "open_time": str, "open": str, "high": str, "low": str, "close": str},
        pk=("symbol", "timeframe", "open_time"),
        not_null={"open", "high", "low", "close"},
        strict=True,
    )
    db.table("checks").create(
        {"id": int, "portfolio_id": int, "through": str, "ran_at": str, "events": int},
        pk="id",
        not_null={"portfolio_id", "through", "ran_at", "events"},
        foreign_keys=[("portfolio_id", "portfolios", "id")],
        strict=True,
    )
    db.table("checks").create_index(["portfolio_id", "through"])
    # Each funding payment is booked once per trade and funding time, however often check runs.
    db.execute("create unique index funding_once on cash_flows (trade_id, at) where kind = 'funding'")


def m003_snapshots(db: Database) -> None:
    money: tuple[str, ...] = (
        "equity",
        "wallet_balance",
        "free_margin",
        "spot_holdings",
        "margin_used",
        "unrealized_pnl",
    )
    money += ("realized_pnl", "fees", "liquidation_fees", "funding", "deposits", "withdrawals")
    db.table("snapshots").create(
        {
            "id": int,
            "portfolio_id": int,
            "day": str,
            "taken_at": str,
            "written_at": str,
            "backfilled": int,
            **dict.fromkeys(money, str),
            "margin_level_pct": str,
        },
        pk="id",
        not_null={"portfolio_id", "day", "taken_at", "written_at", "backfilled", *money},
        foreign_keys=[("portfolio_id", "portfolios", "id")],
        strict=True,
    )
    # One snapshot per portfolio and UTC day: a second one that day replaces the first.
    db.table("snapshots").create_index(["portfolio_id", "day"], unique=True)
    prices = ("qty", "entry_usdt", "mark", "mark_usdt", "value", "unrealized_pnl", "margin")
    db.table("snapshot_positions").create(
        {
            "snapshot_id": int,
            "trade_id": int,
            "symbol": str,
            "side": str,
            "kind": str,
            **dict.fromkeys(prices, str),
            "price_at": str,
            "price_source": str,
        },
        pk=("snapshot_id", "trade_id"),
        not_null={"symbol", "side", "kind", "price_at", "price_source", *prices},
        foreign_keys=[("snapshot_id", "snapshots", "id"), ("trade_id", "trades", "id")],
        strict=True,
    )


def m004_report_indexes(db: Database) -> None:
    # Covering indexes for the report, which sums every trade's flows and closes: read from the
    # index alone, in trade order, 100,000 trades take a third of the time.
    db.table("cash_flows").create_index(["portfolio_id", "trade_id", "kind", "at", "amount"])
    db.table("closes").create_index(["trade_id", "closed_at", "qty"])


def m005_rebalances(db: Database) -> None:
    # One row per executed rebalance; its trades are booked as ordinary trades and closes.
    db.table("rebalances").create(
        {
            "id": int,
            "portfolio_id": int,
            "at": str,
            "strategy": str,
            "mode": str,
            "forced": int,
            "drift_before": str,
            "drift_after": str,
            "fees": str,
            "before": str,  # JSON: [{asset, target, weight}]
            "after": str,
            "trades": str,  # JSON: [{asset, side, qty, price, fee, trade_id | close_ids}]
        },
        pk="id",
        not_null={"portfolio_id", "at", "strategy", "mode", "forced", "drift_before", "drift_after", "fees"},
        foreign_keys=[("portfolio_id", "portfolios", "id")],
        strict=True,
    )
    db.table("rebalances").create_index(["portfolio_id", "at"])


def m006_calendar_snapshots(db: Database) -> None:
    """Snapshots move to the calendar convention: the snapshot of day D is the equity at the end of D
    (00:00 UTC of D + 1). Until now a backfilled snapshot labelled D held the equity at 00:00 of D, the
    end of D − 1: it is relabelled D − 1, its values unchanged (they are exactly that day's end). A
    snapshot taken during its day keeps its label and is that day's provisional one: the next
    `portfolio snapshot` values the day's end from the daily candles. Where a relabelled snapshot
    lands on a day that held a provisional one, the day's end replaces it."""
    conn = db.conn
    rows = conn.execute("select id, portfolio_id, day, taken_at from snapshots order by portfolio_id, day").fetchall()
    midnight = {row[0] for row in rows if row[3].startswith(f"{row[2]}T00:00:00.000000")}
    slots = {(row[1], row[2]): row[0] for row in rows}
    moved = replaced = 0
    for snapshot_id, portfolio_id, day, _ in rows:
        if snapshot_id not in midnight:
            continue
        (before,) = conn.execute("select date(?, '-1 day')", [day]).fetchone()
        held = slots.pop((portfolio_id, before), None)
        if held is not None and held not in midnight:
            conn.execute("delete from snapshot_positions where snapshot_id = ?", [held])
            conn.execute("delete from snapshots where id = ?", [held])
            replaced += 1
        conn.execute("update snapshots set day = ? where id = ?", [before, snapshot_id])
        slots.pop((portfolio_id, day), None)
        slots[(portfolio_id, before)] = snapshot_id
        moved += 1
    if moved or replaced:
        conn.execute(
            "insert into audit_log (at, command, action, portfolio_id, details) "
            "values (strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now'), 'migrate', 'relabel snapshots', null, ?)",
            [f'{{"relabelled": {moved}, "replaced provisional": {replaced}}}'],
        )


def m010_notify_state(db: Database) -> None:
    # The margin state last sent per portfolio: an unchanged state is not sent again until it changes
    # or notify.repeat_hours pass.
    db.table("notify_state").create(
        {"portfolio_id": int, "state": str, "level_pct": str, "sent_at": str},
        pk="portfolio_id",
        not_null={"state", "sent_at"},
        foreign_keys=[("portfolio_id", "portfolios", "id")],
        strict=True,
    )
    # Messages queued after a command's records commit, sent after that; a failed one stays pending
    # and the next run sends it. A destination is named by a key derived from its URL, never the URL.
    db.table("notify_outbox").create(
        {
            "id": int,
            "destination": str,
            "scheme": str,
            "created_at": str,
            "command": str,
            "title": str,
            "body": str,
            "attempts": int,
            "last_error": str,
            "settled_at": str,  # when it was sent, or dropped (last_error says which)
        },
        pk="id",
        not_null={"destination", "scheme", "created_at", "command", "title", "body", "attempts"},
        strict=True,
    )
    db.execute("create index notify_pending on notify_outbox (id) where settled_at is null")


def m011_amendments_trailing(db: Database) -> None:
    # A trailing stop set at open (percent; null: none), and the amendments of a trade's exit levels,
    # each in force from its own time (a level null is unchanged; ``removed`` lists those taken off).
    db.table("trades").add_column("trailing_pct", str)
    db.table("amendments").create(
        {
            "id": int,
            "trade_id": int,
            "at": str,
            "stop_loss": str,
            "take_profit": str,
            "trailing_pct": str,
            "reference": str,  # the price a trailing stop set here follows from
            "removed": str,  # comma-separated: stop_loss, take_profit, trailing_stop
            "note": str,
        },
        pk="id",
        not_null={"trade_id", "at", "removed"},
        foreign_keys=[("trade_id", "trades", "id")],
        strict=True,
    )
    db.table("amendments").create_index(["trade_id", "at"], unique=True)


def m012_orders(db: Database) -> None:
    # Pending orders (limit and stop-entry) and their ends: filled as a trade, cancelled or expired.
    db.table("orders").create(
        {
            "id": int,
            "portfolio_id": int,
            "symbol": str,
            "side": str,
            "kind": str,
            "margin_mode": str,
            "leverage": int,
            "order_type": str,
            "price": str,
            "qty": str,
            "reserved": str,  # USDT of free margin held while open
            "placed_at": str,
            "expires_at": str,
            "stop_loss": str,
            "take_profit": str,
            "trailing_pct": str,
            "strategy": str,
            "note": str,
        },
        pk="id",
        not_null={"portfolio_id", "symbol", "side", "kind", "leverage", "order_type", "price", "qty", "reserved",
                  "placed_at"},
        foreign_keys=[("portfolio_id", "portfolios", "id")],
        strict=True,
    )
    db.table("orders").create_index(["portfolio_id"])
    db.table("order_ends").create(
        {"id": int, "order_id": int, "at": str, "status": str, "trade_id": int, "reason": str},
        pk="id",
        not_null={"order_id", "at", "status"},
        foreign_keys=[("order_id", "orders", "id"), ("trade_id", "trades", "id")],
        strict=True,
    )
    db.table("order_ends").create_index(["order_id"], unique=True)  # an order ends once


def m013_report_lookups(db: Database) -> None:
    # What the report looks up on a ledger of 100,000 trades, each at once instead of by a scan of
    # every cash flow: the latest flow, the deposits and withdrawals of a range, the odd amounts
    # (``codec.ODD_AMOUNT_SQL``: none, usually, so sums take the plain integer path); and each
    # trade's closes with their reasons, read from the index alone.
    db.execute("create index cash_flows_at on cash_flows (portfolio_id, at)")
    db.execute(
        "create index cash_flows_transfers on cash_flows (portfolio_id, at) where kind in ('deposit', 'withdrawal')"
    )
    db.execute("create index cash_flows_odd_amounts on cash_flows (portfolio_id, at, id) where "
               "length(ltrim(amount, '-')) > 19 or instr(amount, 'E') > 0")  # fmt: skip
    db.execute("create index closes_by_trade on closes (trade_id, closed_at, qty, reason)")


# What a void takes out of the fold: each voided row, by its table (one row once: a void cannot be
# voided, nor a row voided twice). The ``live_*`` views are the records that count; every read that
# folds records reads them, so the filter lives here once.
LIVE_VIEWS = ("trades", "closes", "cash_flows", "margin_changes", "amendments")


def m014_voids(db: Database) -> None:
    # A void: a mistaken record reversed as if it never happened, itself a record (append-only), in
    # force from when it was entered (``at``); ``record`` and ``record_id`` name what it voided.
    db.table("voids").create(
        {
            "id": int,
            "portfolio_id": int,
            "at": str,
            "record": str,  # trade, close, deposit, withdrawal, margin_change, amendment
            "record_id": int,
            "record_at": str,  # the voided record's effective time
            "reason": str,
            "summary": str,  # what was voided, in words, as it stood
        },
        pk="id",
        not_null={"portfolio_id", "at", "record", "record_id", "record_at", "reason", "summary"},
        foreign_keys=[("portfolio_id", "portfolios", "id")],
        strict=True,
    )
    db.table("voids").create_index(["portfolio_id", "at"])
    db.table("voided_rows").create(
        {"tbl": str, "row_id": int, "void_id": int},
        pk=("tbl", "row_id"),
        not_null={"void_id"},
        foreign_keys=[("void_id", "voids", "id")],
        strict=True,
    )
    for table in LIVE_VIEWS:
        db.execute(
            f"create view live_{table} as select * from {table} "
            f"where id not in (select row_id from voided_rows where tbl = '{table}')"
        )


def m015_drop_superseded_close_index(db: Database) -> None:
    # m013's index of each trade's closes extends m004's (trade, time, quantity) with the reason, so
    # m004's serves no query any more: a close is written to as many indexes as before m013.
    db.execute("drop index if exists idx_closes_trade_id_closed_at_qty")


# Each live trade's totals, kept by triggers in the transaction that writes its records (any write:
# a booking, an import, a void), so that a report over 100,000 trades reads one narrow row per trade
# instead of folding 400,000 records. Money and quantities in whole 1e-8 units (``codec.units_sql``),
# times also in microseconds since 1970; an amount the integers cannot hold exactly (10 billion or
# more, or a sum beyond 64 bits) leaves a float or NULL, and the report then folds the records
# instead. `verify` compares every row with the fold of the records.
_UNITS = (  # any decimal text: the ledger's fixed-point 8 places, or as the first release wrote it
    "(case when instr({0}, 'E') or instr({0}, 'e') then cast(round({0} * 100000000) as integer) "
    "when instr({0}, '.') = 0 then {0} * 100000000 "
    "when length({0}) - instr({0}, '.') > 8 or instr({0}, '.') > 12 then 9e999 "
    "else cast(substr({0}, 1, instr({0}, '.') - 1) || substr(substr({0}, instr({0}, '.') + 1) || '00000000', 1, 8) "
    "as integer) end)"
)
_MICROS = (  # UTC ISO-8601 text, with microseconds or (as the first release wrote it) without
    "(case when substr({0}, -6) = '+00:00' and length({0}) in (25, 32) "
    "then cast(strftime('%s', substr({0}, 1, 19)) as integer) * 1000000 "
    "+ iif(length({0}) = 32, cast(substr({0}, 21, 6) as integer), 0) end)"
)
_LATER_CLOSE = (
    "(last_close is null or new.closed_at > last_close or (new.closed_at = last_close and new.id > last_close_id))"
)


def m016_trade_totals(db: Database) -> None:
    db.execute(
        """create table trade_totals (
            trade_id integer primary key,
            portfolio_id integer not null,
            symbol text not null,
            side text not null,
            strategy text,
            opened_at text not null,
            opened_us integer,           -- opened_at in microseconds since 1970
            qty any,                     -- the trade's quantity, in 1e-8 units
            closed any,                  -- Σ its live closes' quantities, in 1e-8 units
            last_close text,             -- its latest live close: time, microseconds, id, reason
            last_close_us integer,
            last_close_id integer,
            exit_reason text,
            net any,                     -- Σ its live flows but funding (fees, realized PnL), 1e-8 units
            net_flows integer not null,  -- how many flows that is
            funding any,                 -- Σ its live funding flows, 1e-8 units
            first_flow_at text,          -- its earliest and latest live flow
            last_flow_at text
        ) strict"""
    )
    # The rows that are not all exact integers, found at once (there are none, usually).
    db.execute(
        "create index trade_totals_inexact on trade_totals (portfolio_id) where not (typeof(qty) = 'integer' and "
        "typeof(closed) = 'integer' and typeof(net) = 'integer' and typeof(funding) = 'integer' and "
        "opened_us is not null and (last_close is null or last_close_us is not null))"
    )
    u, us = _UNITS.format, _MICROS.format
    db.execute(
        f"""create trigger trade_totals_open after insert on trades begin
            insert into trade_totals (trade_id, portfolio_id, symbol, side, strategy, opened_at, opened_us, qty,
                                      closed, net, net_flows, funding)
            values (new.id, new.portfolio_id, new.symbol, new.side, new.strategy, new.opened_at,
                    {us("new.opened_at")}, {u("new.qty")}, 0, 0, 0, 0);
        end"""
    )
    # In an UPDATE every right-hand side reads the row as it was: the latest close is decided once.
    db.execute(
        f"""create trigger trade_totals_close after insert on closes begin
            update trade_totals set
                closed = closed + {u("new.qty")},
                last_close_us = iif({_LATER_CLOSE}, {us("new.closed_at")}, last_close_us),
                exit_reason = iif({_LATER_CLOSE}, new.reason, exit_reason),
                last_close_id = iif({_LATER_CLOSE}, new.id, last_close_id),
                last_close = iif({_LATER_CLOSE}, new.closed_at, last_close)
            where trade_id = new.trade_id;
        end"""
    )
    db.execute(
        f"""create trigger trade_totals_flow after insert on cash_flows when new.trade_id is not null begin
            update trade_totals set
                net = net + iif(new.kind = 'funding', 0, {u("new.amount")}),
                net_flows = net_flows + (new.kind != 'funding'),
                funding = funding + iif(new.kind = 'funding', {u("new.amount")}, 0),
                first_flow_at = iif(first_flow_at is null or new.at < first_flow_at, new.at, first_flow_at),
                last_flow_at = iif(last_flow_at is null or new.at > last_flow_at, new.at, last_flow_at)
            where trade_id = new.trade_id and portfolio_id = new.portfolio_id;
        end"""
    )
    # A void takes its rows out: their amounts come off (inf − inf leaves NULL: the slow path), and
    # the latest close and the flows' span are read again from what stays live.
    db.execute(
        f"""create trigger trade_totals_void after insert on voided_rows begin
            delete from trade_totals where new.tbl = 'trades' and trade_id = new.row_id;
            update trade_totals set
                closed = closed - (select {u("qty")} from closes where id = new.row_id),
                (last_close, last_close_us, last_close_id, exit_reason) = (
                    select closed_at, {us("closed_at")}, id, reason from live_closes
                    where trade_id = trade_totals.trade_id order by closed_at desc, id desc limit 1)
            where new.tbl = 'closes' and trade_id = (select trade_id from closes where id = new.row_id);
            update trade_totals set
                net = net - (select iif(kind = 'funding', 0, {u("amount")}) from cash_flows where id = new.row_id),
                net_flows = net_flows - (select kind != 'funding' from cash_flows where id = new.row_id),
                funding = funding - (select iif(kind = 'funding', {u("amount")}, 0) from cash_flows where id = new.row_id),
                (first_flow_at, last_flow_at) = (
                    select min(at), max(at) from live_cash_flows
                    where portfolio_id = trade_totals.portfolio_id and trade_id = trade_totals.trade_id)
            where new.tbl = 'cash_flows'
                and (trade_id, portfolio_id) = (select trade_id, portfolio_id from cash_flows where id = new.row_id);
        end"""
    )
    # Records are never rewritten or deleted; should one be, its trade's totals stop counting (NULL:
    # the report folds that portfolio's records) and `verify` names it.
    for table, trade in (("trades", "id"), ("closes", "trade_id"), ("cash_flows", "trade_id")):
        for event in ("update", "delete"):
            db.execute(
                f"""create trigger trade_totals_{table}_{event} after {event} on {table} begin
                    update trade_totals set net = null
                    where trade_id in (old.{trade}{'' if event == 'delete' else f', new.{trade}'});
                end"""
            )
    _fill_trade_totals(db.conn)


def _fill_trade_totals(conn: sqlite3.Connection) -> None:
    """The totals of a ledger's existing trades, folded from its live records in Python's integers."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    limit, epoch, micro = 2**63, datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)

    def units(text: str) -> int | None:
        point = text.find(".")
        if "e" not in text.lower() and point >= 0 and (len(text) - point - 1 > 8 or point > 11):
            return None
        value = Decimal(text).scaleb(8)
        return int(value) if value == value.to_integral_value() and -limit <= value < limit else None

    def micros(text: str) -> int | None:
        if len(text) not in (25, 32) or not text.endswith("+00:00"):
            return None
        return (datetime.fromisoformat(text) - epoch) // micro

    def add(total: int | None, part: int | None) -> int | None:
        if total is None or part is None or not -limit <= total + part < limit:
            return None
        return total + part

    rows: dict[int, list] = {}
    for trade_id, portfolio_id, symbol, side, strategy, opened_at, qty in conn.execute(
        "select id, portfolio_id, symbol, side, strategy, opened_at, qty from live_trades"
    ):
        # opened_us … funding as in the table, then the flows' first and last moments
        rows[trade_id] = [portfolio_id, symbol, side, strategy, opened_at, micros(opened_at), units(qty),
                          0, None, None, None, None, 0, 0, 0, None, None]  # fmt: skip
    for trade_id, close_id, qty, closed_at, reason in conn.execute(
        "select trade_id, id, qty, closed_at, reason from live_closes order by id"
    ):
        row = rows.get(trade_id)
        if row is None:
            continue
        row[7] = add(row[7], units(qty))
        if row[8] is None or (closed_at, close_id) > (row[8], row[10]):
            row[8:12] = [closed_at, micros(closed_at), close_id, reason]
    for trade_id, portfolio_id, kind, amount, at in conn.execute(
        "select trade_id, portfolio_id, kind, amount, at from live_cash_flows where trade_id is not null"
    ):
        row = rows.get(trade_id)
        if row is None or row[0] != portfolio_id:
            continue
        which = 14 if kind == "funding" else 12
        row[which] = add(row[which], units(amount))
        row[13] += kind != "funding"
        row[15] = at if row[15] is None or at < row[15] else row[15]
        row[16] = at if row[16] is None or at > row[16] else row[16]
    conn.executemany(
        "insert into trade_totals (trade_id, portfolio_id, symbol, side, strategy, opened_at, opened_us, qty, closed, "
        "last_close, last_close_us, last_close_id, exit_reason, net, net_flows, funding, first_flow_at, last_flow_at) "
        "values (" + ",".join("?" * 18) + ")",
        [(trade_id, *row) for trade_id, row in rows.items()],
    )


# The closed-trade statistics of each UTC day, kept beside ``trade_totals`` by triggers on it, so that a
# report over 100,000 trades sums a few rows per day (``Queries.closed_totals``) instead of grouping
# and sorting every trade: per day (of a trade's last close) and symbol, strategy, side and exit
# reason the count, wins, losses, net PnL, wins' and losses' sums, holding time and largest win and
# loss, all in whole units as ``trade_totals`` keeps them; and per day the outcomes of its closed
# trades in closing order (``W``, ``L``, ``0``), from which streaks run across days; and each month's
# sums of its days. A day is summed afresh from its trades whenever one of them changes (a largest win
# cannot be taken back), and its month from its days. A sum that could pass 64 bits is kept as a
# float, which the report refuses (it then folds the records).
def _closed_day_sql(pid: str, day: str, extra: str = "1") -> list[str]:
    """The statements that write day ``day`` of portfolio ``pid`` (SQL expressions) afresh from
    ``trade_totals``, each only where ``extra`` holds."""
    rows = (
        f"from trade_totals where portfolio_id = {pid} and last_close > {day} and last_close < {day} || 'U' "
        f"and closed >= qty and {extra}"
    )
    # Whether a sum of this day could leave 64-bit integers: then it is summed in floats. No partial
    # sum is larger than the sum of the magnitudes (added up in floats, which cannot overflow), so
    # below 4e18 every sum is exact, as ``refresh_closed_days`` finds it when it sums them.
    risky = f"(select max(total(abs(net)), total(abs(last_close_us - opened_us))) >= 4e18 {rows})"
    month_days = f"portfolio_id = {pid} and day >= substr({day}, 1, 7) || '-01' and day <= substr({day}, 1, 7) || '-31'"
    month_risky = (
        "(select max(total(abs(net)), total(abs(won)), total(abs(lost)), total(abs(held_us))) >= 4e18 "
        f"from closed_days where {month_days})"
    )
    exact = "iif(r.risky, {0} * 1.0, {0})".format
    return [
        f"delete from closed_days where portfolio_id = {pid} and day = {day} and {extra}",
        f"delete from closed_outcomes where portfolio_id = {pid} and day = {day} and {extra}",
        f"""insert into closed_days (portfolio_id, day, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, {day}, symbol, strategy, side, exit_reason, count(*), sum(net > 0), sum(net < 0),
                sum({exact("net")}), sum(net_flows > 0), sum(iif(net > 0, {exact("net")}, 0)),
                sum(iif(net < 0, {exact("-net")}, 0)), sum({exact("(last_close_us - opened_us)")}),
                max(iif(net > 0, net, null)), min(iif(net < 0, net, null))
            from (select {risky} as risky) r, trade_totals
            where portfolio_id = {pid} and last_close > {day} and last_close < {day} || 'U' and closed >= qty
                and {extra}
            group by symbol, strategy, side, exit_reason""",
        # Closing order is the index's (last close, then trade id); a day's text is never longer
        # than 100,000 characters per 100,000 trades.
        # Its month, from its days.
        f"delete from closed_months where portfolio_id = {pid} and month = substr({day}, 1, 7) and {extra}",
        f"""insert into closed_months (portfolio_id, month, symbol, strategy, side, exit_reason, trades, wins, losses,
                net, flowing, won, lost, held_us, largest_win, largest_loss)
            select portfolio_id, substr({day}, 1, 7), symbol, strategy, side, exit_reason, sum(trades), sum(wins),
                sum(losses), sum({exact("net")}), sum(flowing), sum({exact("won")}), sum({exact("lost")}),
                sum({exact("held_us")}), max(largest_win), min(largest_loss)
            from (select {month_risky} as risky) r, closed_days
            where {month_days} and {extra}
            group by symbol, strategy, side, exit_reason""",
        f"""insert into closed_outcomes (portfolio_id, day, outcomes)
            select {pid}, {day}, outcomes from (
                select group_concat(outcome, '') as outcomes from (
                    select substr('0WL', 1 + (net > 0) + 2 * (net < 0), 1) as outcome {rows}
                    order by last_close, trade_id))
            where outcomes is not null""",
    ]


CLOSED_DAY_TRIGGERS = ("closed_days_open", "closed_days_change", "closed_days_void")


def m017_closed_days(db: Database) -> None:
    db.execute("create index trade_totals_by_close on trade_totals (portfolio_id, last_close)")
    db.execute(
        """create table closed_days (
            portfolio_id integer not null,
            day text not null,           -- the UTC day of the trades' last close, YYYY-MM-DD
            symbol text not null,
            strategy text,
            side text not null,
            exit_reason text,
            trades integer not null,
            wins any,                    -- net > 0
            losses any,                  -- net < 0
            net any,                     -- Σ net, 1e-8 units (as trade_totals)
            flowing any,                 -- how many of them booked a flow but funding
            won any,                     -- Σ net of the wins
            lost any,                    -- −Σ net of the losses
            held_us any,                 -- Σ (last close − opening), microseconds
            largest_win any,
            largest_loss any
        ) strict"""
    )
    db.execute("create index closed_days_by_day on closed_days (portfolio_id, day)")
    db.execute(
        """create table closed_months (
            portfolio_id integer not null,
            month text not null,         -- YYYY-MM: the sums of its days in closed_days
            symbol text not null,
            strategy text,
            side text not null,
            exit_reason text,
            trades integer not null,
            wins any,
            losses any,
            net any,
            flowing any,
            won any,
            lost any,
            held_us any,
            largest_win any,
            largest_loss any
        ) strict"""
    )
    db.execute("create index closed_months_by_month on closed_months (portfolio_id, month)")
    db.execute(
        """create table closed_outcomes (
            portfolio_id integer not null,
            day text not null,
            outcomes text not null,      -- W, L or 0 per closed trade, in closing order
            primary key (portfolio_id, day)
        ) strict"""
    )
    _create_closed_day_triggers(db)
    refresh_closed_days(db.conn)


def _create_closed_day_triggers(db: Database) -> None:
    counted = "{0}.last_close is not null and {0}.closed >= {0}.qty".format
    day = "substr({0}.last_close, 1, 10)".format
    body = "; ".join
    db.execute(
        f"""create trigger closed_days_open after insert on trade_totals when {counted("new")} begin
            {body(_closed_day_sql("new.portfolio_id", day("new")))};
        end"""
    )
    db.execute(
        f"""create trigger closed_days_void after delete on trade_totals when {counted("old")} begin
            {body(_closed_day_sql("old.portfolio_id", day("old")))};
        end"""
    )
    other = f"(new.portfolio_id is not old.portfolio_id or {day('new')} is not {day('old')})"
    db.execute(
        f"""create trigger closed_days_change after update on trade_totals
            when ({counted("old")}) or ({counted("new")}) begin
            {body(_closed_day_sql("old.portfolio_id", day("old")))};
            {body(_closed_day_sql("new.portfolio_id", day("new"), other))};
        end"""
    )


def m020_closed_days_exact_sums(db: Database) -> None:
    """The days' triggers judged a day's sums at risk of leaving 64-bit integers by its largest
    figure times its count, so a day with one very large trade among a few small ones was summed in
    floats where the exact integers fit (and a report then folded its records). They now judge by
    the sum of the magnitudes; every day is written afresh by that rule."""
    for name in CLOSED_DAY_TRIGGERS:
        db.execute(f"drop trigger {name}")
    _create_closed_day_triggers(db)
    refresh_closed_days(db.conn)


def refresh_closed_days(conn: sqlite3.Connection, days: list[tuple[int, str]] | None = None) -> None:
    """Write these days (portfolio id, YYYY-MM-DD) of ``closed_days``, ``closed_outcomes`` and their
    months afresh from ``trade_totals`` (every day when None): the triggers' figures, summed for all
    the days at once (an import's); in floats when a sum is beyond 64 bits."""
    conn.execute(
        "create temp table if not exists closed_days_redo "
        "(portfolio_id integer, day text, primary key (portfolio_id, day))"
    )
    conn.execute("delete from temp.closed_days_redo")
    if days is None:
        conn.execute(
            "insert or ignore into temp.closed_days_redo select portfolio_id, substr(last_close, 1, 10) "
            "from trade_totals where last_close is not null and closed >= qty union "
            "select portfolio_id, day from closed_days union select portfolio_id, day from closed_outcomes"
        )
    else:
        conn.executemany("insert or ignore into temp.closed_days_redo values (?, ?)", days)
    chosen = "(portfolio_id, {0}) in (select portfolio_id, {1} from temp.closed_days_redo)".format
    rows = (
        "from temp.closed_days_redo d cross join trade_totals t on t.portfolio_id = d.portfolio_id "
        "and t.last_close > d.day and t.last_close < d.day || 'U' where t.closed >= t.qty"
    )
    for exact in ("{0}", "({0} * 1.0)"):
        conn.execute(f"delete from closed_days where {chosen('day', 'day')}")
        conn.execute(f"delete from closed_months where {chosen('month', 'substr(day, 1, 7)')}")
        x = exact.format
        try:
            conn.execute(
                f"""insert into closed_days (portfolio_id, day, symbol, strategy, side, exit_reason, trades, wins,
                        losses, net, flowing, won, lost, held_us, largest_win, largest_loss)
                    select d.portfolio_id, d.day, symbol, strategy, side, exit_reason, count(*), sum(net > 0),
                        sum(net < 0), sum({x("net")}), sum(net_flows > 0), sum(iif(net > 0, {x("net")}, 0)),
                        sum(iif(net < 0, {x("-net")}, 0)), sum({x("(last_close_us - opened_us)")}),
                        max(iif(net > 0, net, null)), min(iif(net < 0, net, null))
                    {rows} group by d.portfolio_id, d.day, symbol, strategy, side, exit_reason"""
            )
            conn.execute(
                f"""insert into closed_months (portfolio_id, month, symbol, strategy, side, exit_reason, trades, wins,
                        losses, net, flowing, won, lost, held_us, largest_win, largest_loss)
                    select portfolio_id, substr(day, 1, 7), symbol, strategy, side, exit_reason, sum(trades),
                        sum(wins), sum(losses), sum({x("net")}), sum(flowing), sum({x("won")}), sum({x("lost")}),
                        sum({x("held_us")}), max(largest_win), min(largest_loss)
                    from closed_days where {chosen('substr(day, 1, 7)', 'substr(day, 1, 7)')}
                    group by portfolio_id, substr(day, 1, 7), symbol, strategy, side, exit_reason"""
            )
            break
        except sqlite3.OperationalError as exc:
            if "overflow" not in str(exc):
                raise
    # The outcomes in closing order, joined here (SQLite's group_concat keeps no order it promises).
    conn.execute(f"delete from closed_outcomes where {chosen('day', 'day')}")
    outcomes: dict[tuple[int, str], list[str]] = {}
    order = "order by d.portfolio_id, t.last_close, t.trade_id"
    sql = f"select d.portfolio_id, d.day, (net > 0) - (net < 0) {rows} {order}"
    for pid, day, sign in conn.execute(sql):
        if sign is not None:
            outcomes.setdefault((pid, day), []).append("0WL"[sign])
    conn.executemany(
        "insert into closed_outcomes (portfolio_id, day, outcomes) values (?, ?, ?)",
        [(pid, day, "".join(marks)) for (pid, day), marks in outcomes.items()],
    )
    conn.execute("delete from temp.closed_days_redo")


# The union of the holding spans (opening to last close) of the trades closed in full, as disjoint
# intervals in microseconds, kept by triggers on ``trade_totals``: a report's exposure time is this
# union clipped to its range, with the trades still open (which reach its end) added, read from a few
# rows instead of sorting every trade's span (``Queries.closed_totals``). A closed span joins the
# intervals it overlaps or touches; one taken back (a void, a later close) has the interval that held
# it built again from the spans inside it. `verify` compares them with the spans.
CLOSED_SPAN_TRIGGERS = ("closed_spans_open", "closed_spans_change", "closed_spans_void")
# A trade's span, while it counts: closed in full, and not before it opened (such a span is left to
# the report, which then adds the spans up one by one).
_SPAN = "iif({0}.closed >= {0}.qty and {0}.last_close_us >= {0}.opened_us, {0}.{1}, null)"


def _islands_sql(source: str) -> str:
    """SQL selecting (portfolio id, start, end) of the union of the spans ``source`` selects as
    (pid, a, b): in order of their starts, a span that starts beyond every end before it begins an
    interval."""
    return f"""
        select pid, min(a), max(b) from (
            select pid, a, b, sum(fresh) over (partition by pid order by a, b rows unbounded preceding) as island
            from (select pid, a, b, coalesce(a > max(b) over (partition by pid order by a, b
                                                          rows between unbounded preceding and 1 preceding), 0) as fresh
                  from ({source})))
        group by pid, island"""


def _span_removed_sql(row: str, extra: str = "1") -> list[str]:
    a, b = _SPAN.format(row, "opened_us"), _SPAN.format(row, "last_close_us")
    inside = (
        "select t.portfolio_id as pid, t.opened_us as a, t.last_close_us as b from trade_totals t "
        "join closed_spans_redo r on t.portfolio_id = r.portfolio_id and t.opened_us >= r.start_us "
        "and t.last_close_us <= r.end_us and t.closed >= t.qty where t.last_close_us >= t.opened_us"
    )
    return [
        f"""insert into closed_spans_redo select portfolio_id, start_us, end_us from closed_spans
            where portfolio_id = {row}.portfolio_id and start_us <= {a} and end_us >= {b} and {extra}""",
        "delete from closed_spans where (portfolio_id, start_us) in "
        "(select portfolio_id, start_us from closed_spans_redo)",
        f"insert into closed_spans (portfolio_id, start_us, end_us) {_islands_sql(inside)}",
        "delete from closed_spans_redo",
    ]


def _span_added_sql(row: str, extra: str = "1") -> list[str]:
    a, b = _SPAN.format(row, "opened_us"), _SPAN.format(row, "last_close_us")
    touching = f"portfolio_id = {row}.portfolio_id and start_us <= {b} and end_us >= {a}"
    return [
        f"""insert or replace into closed_spans (portfolio_id, start_us, end_us)
            select * from (
                select {row}.portfolio_id, min({a}, coalesce(min(start_us), {a})) as s,
                    max({b}, coalesce(max(end_us), {b})) from closed_spans where {touching} and {extra})
            where s is not null""",
        f"""delete from closed_spans where {touching} and {extra}
            and start_us > (select min(start_us) from closed_spans where {touching})""",
    ]


def m018_closed_spans(db: Database) -> None:
    db.execute(
        """create table closed_spans (
            portfolio_id integer not null,
            start_us integer not null,   -- microseconds since 1970
            end_us integer not null,
            primary key (portfolio_id, start_us)
        ) strict"""
    )
    db.execute("create index closed_spans_by_end on closed_spans (portfolio_id, end_us)")
    db.execute("create table closed_spans_redo (portfolio_id integer, start_us integer, end_us integer) strict")
    db.execute("create index trade_totals_by_opening on trade_totals (portfolio_id, opened_us)")
    # The trades not closed in full (few), and those closed before they opened (none: the report then
    # adds the spans up one by one, as before).
    db.execute(
        "create index trade_totals_not_closed on trade_totals (portfolio_id, opened_at) where not (closed >= qty)"
    )
    db.execute("create index trade_totals_backwards on trade_totals (portfolio_id) where last_close_us < opened_us")
    span = "({0} is not {1})".format
    moved = (
        f"({span(_SPAN.format('old', 'opened_us'), _SPAN.format('new', 'opened_us'))} or "
        f"{span(_SPAN.format('old', 'last_close_us'), _SPAN.format('new', 'last_close_us'))} or "
        "old.portfolio_id is not new.portfolio_id)"
    )
    body = "; ".join
    db.execute(
        f"""create trigger closed_spans_open after insert on trade_totals
            when {_SPAN.format("new", "opened_us")} is not null begin
            {body(_span_added_sql("new"))};
        end"""
    )
    db.execute(
        f"""create trigger closed_spans_void after delete on trade_totals
            when {_SPAN.format("old", "opened_us")} is not null begin
            {body(_span_removed_sql("old"))};
        end"""
    )
    db.execute(
        f"""create trigger closed_spans_change after update on trade_totals when {moved} begin
            {body(_span_removed_sql("old"))};
            {body(_span_added_sql("new"))};
        end"""
    )
    refill_closed_spans(db.conn)


def refill_closed_spans(conn: sqlite3.Connection, portfolio_ids: list[int] | None = None) -> None:
    """Build ``closed_spans`` afresh from ``trade_totals`` for these portfolios (every one when None)."""
    which = "1" if portfolio_ids is None else f"portfolio_id in ({','.join(str(int(i)) for i in portfolio_ids)})"
    conn.execute(f"delete from closed_spans where {which}")
    spans = (
        "select portfolio_id as pid, opened_us as a, last_close_us as b from trade_totals "
        f"where {which} and closed >= qty and last_close_us >= opened_us"
    )
    conn.execute(f"insert into closed_spans (portfolio_id, start_us, end_us) {_islands_sql(spans)}")


# The flows trades booked, summed per UTC day (and month) and strategy, symbol and side, with how
# many trades booked their first live flow that day, kept by triggers as flows are booked and voided
# and as a trade's first flow moves: a report's attribution (``Queries.trade_parts``) sums a few
# rows per day instead of every trade's totals. Amounts in whole units; a sum beyond 64 bits turns
# into a float, which the report refuses (it then folds the flows).
FLOW_DAY_TRIGGERS = ("flow_days_flow", "flow_days_void", "flow_days_first", "flow_days_first_moved", "flow_days_gone")
FLOW_GROUP = "tagged, strategy, symbol, side"


def _flow_upsert(pid: str, day: str, trade: str, amount: str, first: str, source: str) -> list[str]:
    """Add ``amount`` and ``first`` to the day and month rows of ``day`` (SQL expressions over
    ``source``, whose row ``trade`` holds the trade's strategy, symbol and side)."""
    return [
        f"""insert into {table} (portfolio_id, {period}, {FLOW_GROUP}, amount, first_flows)
            select {pid}, {cut}, {trade}.strategy is not null, coalesce({trade}.strategy, ''), {trade}.symbol,
                {trade}.side, {amount}, {first} {source}
            on conflict do update set amount = amount + excluded.amount,
                first_flows = first_flows + excluded.first_flows"""
        for table, period, cut in (
            ("flow_days", "day", f"substr({day}, 1, 10)"),
            ("flow_months", "month", f"substr({day}, 1, 7)"),
        )
    ]


def m019_flow_days(db: Database) -> None:
    for table, period in (("flow_days", "day"), ("flow_months", "month")):
        db.execute(
            f"""create table {table} (
                portfolio_id integer not null,
                {period} text not null,
                tagged integer not null,     -- whether the trades have a strategy
                strategy text not null,      -- '' when not tagged
                symbol text not null,
                side text not null,
                amount any,                  -- Σ the live flows of its trades booked then, 1e-8 units
                first_flows any,             -- how many of its trades booked their first live flow then
                primary key (portfolio_id, {period}, {FLOW_GROUP})
            ) strict"""
        )
    db.execute("create index trade_totals_by_first_flow on trade_totals (portfolio_id, first_flow_at)")
    db.execute("create index trade_totals_by_last_flow on trade_totals (portfolio_id, last_flow_at)")
    body = "; ".join
    u = _UNITS.format
    of_trade = "from trades t where t.id = {0}.trade_id and t.portfolio_id = {0}.portfolio_id".format
    db.execute(
        f"""create trigger flow_days_flow after insert on cash_flows when new.trade_id is not null begin
            {body(_flow_upsert("new.portfolio_id", "new.at", "t", u("new.amount"), "0", of_trade("new")))};
        end"""
    )
    voided = (
        "from cash_flows f join trades t on t.id = f.trade_id and t.portfolio_id = f.portfolio_id "
        "where f.id = new.row_id"
    )
    db.execute(
        f"""create trigger flow_days_void after insert on voided_rows when new.tbl = 'cash_flows' begin
            {body(_flow_upsert("f.portfolio_id", "f.at", "t", "-" + u("f.amount"), "0", voided))};
        end"""
    )
    first = "where {0}.first_flow_at is not null".format
    db.execute(
        f"""create trigger flow_days_first after insert on trade_totals when new.first_flow_at is not null begin
            {body(_flow_upsert("new.portfolio_id", "new.first_flow_at", "new", "0", "1", first("new")))};
        end"""
    )
    db.execute(
        f"""create trigger flow_days_gone after delete on trade_totals when old.first_flow_at is not null begin
            {body(_flow_upsert("old.portfolio_id", "old.first_flow_at", "old", "0", "-1", first("old")))};
        end"""
    )
    db.execute(
        f"""create trigger flow_days_first_moved after update on trade_totals
            when old.first_flow_at is not new.first_flow_at begin
            {body(_flow_upsert("old.portfolio_id", "old.first_flow_at", "old", "0", "-1", first("old")))};
            {body(_flow_upsert("new.portfolio_id", "new.first_flow_at", "new", "0", "1", first("new")))};
        end"""
    )
    refill_flow_days(db.conn)


def refill_flow_days(conn: sqlite3.Connection, days: list[tuple[int, str]] | None = None) -> None:
    """Sum these days (portfolio id, YYYY-MM-DD) of ``flow_days``, and their months of
    ``flow_months``, afresh from the live flows and ``trade_totals`` (every day when None); in floats
    where a sum is beyond 64 bits."""
    conn.execute(
        "create temp table if not exists flow_days_redo "
        "(portfolio_id integer, day text, primary key (portfolio_id, day))"
    )
    conn.execute("delete from temp.flow_days_redo")
    if days is not None:
        conn.executemany("insert or ignore into temp.flow_days_redo values (?, ?)", days)
        def chosen(column: str, of_day: str) -> str:
            return f"(portfolio_id, {column}) in (select portfolio_id, {of_day} from temp.flow_days_redo)"

        # Each day's flows and first flows, read through the indexes by time.
        flows = (
            "from temp.flow_days_redo d cross join cash_flows f on f.portfolio_id = d.portfolio_id "
            "and f.at > d.day and f.at < d.day || 'U' "
            "join trades t on t.id = f.trade_id and t.portfolio_id = f.portfolio_id "
            "where f.id not in (select row_id from voided_rows where tbl = 'cash_flows')"
        )
        firsts = (
            "from temp.flow_days_redo d cross join trade_totals x on x.portfolio_id = d.portfolio_id "
            "and x.first_flow_at > d.day and x.first_flow_at < d.day || 'U'"
        )
    else:
        def chosen(column: str, of_day: str) -> str:
            return "1"  # every row

        flows = "from live_cash_flows f join trades t on t.id = f.trade_id and t.portfolio_id = f.portfolio_id"
        firsts = "from trade_totals x where x.first_flow_at is not null"
    for exact in ("{0}", "({0} * 1.0)"):
        conn.execute(f"delete from flow_days where {chosen('day', 'day')}")
        conn.execute(f"delete from flow_months where {chosen('month', 'substr(day, 1, 7)')}")
        units = exact.format(_UNITS.format("f.amount"))
        try:
            conn.execute(
                f"""insert into flow_days (portfolio_id, day, {FLOW_GROUP}, amount, first_flows)
                    select pid, day, {FLOW_GROUP}, sum(amount), sum(first_flows) from (
                        select f.portfolio_id as pid, substr(f.at, 1, 10) as day, t.strategy is not null as tagged,
                            coalesce(t.strategy, '') as strategy, t.symbol as symbol, t.side as side,
                            {units} as amount, 0 as first_flows {flows}
                        union all
                        select x.portfolio_id, substr(x.first_flow_at, 1, 10), x.strategy is not null,
                            coalesce(x.strategy, ''), x.symbol, x.side, 0, 1 {firsts})
                    group by pid, day, {FLOW_GROUP}"""
            )
            conn.execute(
                f"""insert into flow_months (portfolio_id, month, {FLOW_GROUP}, amount, first_flows)
                    select portfolio_id, substr(day, 1, 7), {FLOW_GROUP}, sum({exact.format("amount")}),
                        sum(first_flows)
                    from flow_days where {chosen('substr(day, 1, 7)', 'substr(day, 1, 7)')}
                    group by portfolio_id, substr(day, 1, 7), {FLOW_GROUP}"""
            )
            break
        except sqlite3.OperationalError as exc:
            if "overflow" not in str(exc):
                raise
    conn.execute("delete from temp.flow_days_redo")

# Append-only: the order migrations run in. Add new ones at the end; never edit a shipped one.
MIGRATIONS = [
    m001_initial,
    m002_margin_candles_checks,
    m003_snapshots,
    m004_report_indexes,
    m005_rebalances,
    m006_calendar_snapshots,
    m010_notify_state,
    m011_amendments_trailing,
    m012_orders,
    m013_report_lookups,
    m014_voids,
    m015_drop_superseded_close_index,
    m016_trade_totals,
    m017_closed_days,
    m018_closed_spans,
    m019_flow_days,
    m020_closed_days_exact_sums,
]


def applied(conn: sqlite3.Connection) -> list[str]:
    """The names already applied, in the order they were, read with plain SQL (opening an up-to-date
    ledger costs no import)."""
    exists = conn.execute("select 1 from sqlite_master where type = 'table' and name = '_sqlite_migrations'")
    if not exists.fetchone():
        return []
    rows = conn.execute("select name from _sqlite_migrations where migration_set = ? order by rowid", [MIGRATION_SET])
    return [name for (name,) in rows]


def pending(conn: sqlite3.Connection) -> list[str]:
    """Names not yet applied."""
    done = set(applied(conn))
    return [m.__name__ for m in MIGRATIONS if m.__name__ not in done]


def refuse_newer(conn: sqlite3.Connection, path: object) -> None:
    """Refuse a ledger that a newer version of the tool has migrated further than this one knows:
    writing to it could break what that version relies on."""
    known = {m.__name__ for m in MIGRATIONS}
    unknown = [name for name in applied(conn) if name not in known]
    if unknown:
        from portfolio_cli.errors import LedgerFailure

        raise LedgerFailure(
            f"the ledger at {path} was written by a newer version of portfolio-cli (schema {unknown[-1]}, "
            f"which this version does not know); upgrade portfolio-cli to use it. Nothing was changed"
        )


def is_new(conn: sqlite3.Connection) -> bool:
    """Nothing in the file yet: no table, index or view."""
    return conn.execute("select count(*) from sqlite_master").fetchone()[0] == 0


def statements(script: str) -> list[str]:
    """The script's SQL statements, one by one (a trigger's body holds semicolons of its own)."""
    found, pending = [], ""
    for line in script.splitlines(keepends=True):
        if line.startswith("--") and not pending:
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    return found


def create(conn: sqlite3.Connection) -> None:
    """A new ledger at the latest schema, recorded as having applied every migration (inside the
    caller's transaction, as the migrations would be)."""
    for statement in statements(SCHEMA.read_text(encoding="utf-8")):
        conn.execute(statement)
    applied_at = str(datetime.now(UTC))  # as sqlite-utils records an applied migration
    conn.executemany(
        "insert into _sqlite_migrations (migration_set, name, applied_at) values (?, ?, ?)",
        [(MIGRATION_SET, m.__name__, applied_at) for m in MIGRATIONS],
    )


def schema_script(conn: sqlite3.Connection) -> str:
    """The ledger's schema as a script that builds it: tables, then indexes, views and triggers, each
    in the order they were created."""
    rows = conn.execute(
        "select type, name, sql from sqlite_master where sql is not null and name not like 'sqlite_%' "
        "order by case type when 'table' then 0 when 'index' then 1 when 'view' then 2 else 3 end, rowid"
    ).fetchall()
    return SCHEMA_HEADER + "".join(f"-- {kind} {name}\n{sql};\n\n" for kind, name, sql in rows)


SCHEMA_HEADER = (
    "-- The ledger's schema as the migrations in migrations.py build it; a new ledger is created from\n"
    "-- this script. Written by PORTFOLIO_WRITE_SCHEMA=1 python -m pytest tests/test_migrations.py.\n\n"
)


def apply(db: Database) -> None:
    from sqlite_utils import Migrations

    migrations = Migrations(MIGRATION_SET)
    for migration in MIGRATIONS:
        migrations()(migration)
    migrations.apply(db)
