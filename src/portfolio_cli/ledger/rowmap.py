"""How the engine's records map to ledger rows and back: the money columns, the fill query exports
read, and the check that SQLite's JSON encoding is the canonical one. Money is text (see codec)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from portfolio_cli.engine.records import (
    Amendment,
    Order,
    OrderEnd,
    OrderStatus,
    OrderType,
    CashFlow,
    Close,
    CloseReason,
    FlowKind,
    Kind,
    MarginMode,
    Portfolio,
    RebalanceEvent,
    Side,
    Snapshot,
    SnapshotPosition,
    Trade,
    Void,
    VoidKind,
)
from portfolio_cli.ledger import codec


def portfolio(row: sqlite3.Row) -> Portfolio:
    return Portfolio(row["id"], row["name"], codec.moment(row["created_at"]))


def cash_flow(r: sqlite3.Row) -> CashFlow:
    return CashFlow(
        r["id"], FlowKind(r["kind"]), codec.decimal(r["amount"]), codec.moment(r["at"]), r["trade_id"], r["note"]
    )


def trade(r: sqlite3.Row) -> Trade:
    return Trade(
        id=r["id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        kind=Kind(r["kind"]),
        margin_mode=MarginMode(r["margin_mode"]) if r["margin_mode"] else None,
        leverage=r["leverage"],
        qty=codec.decimal(r["qty"]),
        price=codec.decimal(r["price"]),
        price_usdt=codec.decimal(r["price_usdt"]),
        fee=codec.decimal(r["fee"]),
        opened_at=codec.moment(r["opened_at"]),
        stop_loss=codec.optional_decimal(r["stop_loss"]),
        take_profit=codec.optional_decimal(r["take_profit"]),
        strategy=r["strategy"],
        note=r["note"],
        forced=bool(r["forced"]),
        trailing_pct=codec.optional_decimal(r["trailing_pct"]),
    )


def amendment(r: sqlite3.Row) -> Amendment:
    return Amendment(
        id=r["id"],
        trade_id=r["trade_id"],
        at=codec.moment(r["at"]),
        stop_loss=codec.optional_decimal(r["stop_loss"]),
        take_profit=codec.optional_decimal(r["take_profit"]),
        trailing_pct=codec.optional_decimal(r["trailing_pct"]),
        reference=codec.optional_decimal(r["reference"]),
        removed=tuple(x for x in r["removed"].split(",") if x),
        note=r["note"],
    )


def order(r: sqlite3.Row) -> Order:
    return Order(
        id=r["id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        kind=Kind(r["kind"]),
        margin_mode=MarginMode(r["margin_mode"]) if r["margin_mode"] else None,
        leverage=r["leverage"],
        order_type=OrderType(r["order_type"]),
        price=codec.decimal(r["price"]),
        qty=codec.decimal(r["qty"]),
        reserved=codec.decimal(r["reserved"]),
        placed_at=codec.moment(r["placed_at"]),
        expires_at=codec.moment(r["expires_at"]) if r["expires_at"] else None,
        stop_loss=codec.optional_decimal(r["stop_loss"]),
        take_profit=codec.optional_decimal(r["take_profit"]),
        trailing_pct=codec.optional_decimal(r["trailing_pct"]),
        strategy=r["strategy"],
        note=r["note"],
    )


def order_end(r: sqlite3.Row) -> OrderEnd:
    return OrderEnd(
        r["id"], r["order_id"], codec.moment(r["at"]), OrderStatus(r["status"]), r["trade_id"], r["reason"]
    )


def close(r: sqlite3.Row) -> Close:
    return Close(
        id=r["id"],
        trade_id=r["trade_id"],
        qty=codec.decimal(r["qty"]),
        price=codec.decimal(r["price"]),
        price_usdt=codec.decimal(r["price_usdt"]),
        fee=codec.decimal(r["fee"]),
        realized_pnl=codec.decimal(r["realized_pnl"]),
        closed_at=codec.moment(r["closed_at"]),
        note=r["note"],
        reason=CloseReason(r["reason"]),
    )


SNAPSHOT_MONEY = (
    "equity",
    "wallet_balance",
    "free_margin",
    "spot_holdings",
    "margin_used",
    "unrealized_pnl",
    "realized_pnl",
    "fees",
    "liquidation_fees",
    "funding",
    "deposits",
    "withdrawals",
)
FILL_SQL = """
    select 'open' as record, cast(id as text) as trade_id, opened_at as at, symbol, side, kind,
           margin_mode, cast(leverage as text) as leverage, qty, price, price_usdt, fee,
           null as realized_pnl, null as reason, stop_loss, take_profit, strategy, note,
           cast(forced as text) as forced, null as amount,
           instr(qty || price || price_usdt || fee || coalesce(stop_loss, '') || coalesce(take_profit, ''), 'E')
               as legacy,
           0 as part, id as fill_id
    from live_trades where portfolio_id = ? and opened_at >= ? and opened_at < ?
    union all
    select 'close', cast(t.id as text), c.closed_at, t.symbol, t.side, t.kind,
           null, null, c.qty, c.price, c.price_usdt, c.fee,
           c.realized_pnl, c.reason, null, null, null, c.note,
           null, null, instr(c.qty || c.price || c.price_usdt || c.fee || c.realized_pnl, 'E'), 1, c.id
    from live_closes c join trades t on t.id = c.trade_id
    where t.portfolio_id = ? and c.closed_at >= ? and c.closed_at < ?
    union all
    select 'margin', cast(t.id as text), m.at, t.symbol, t.side, t.kind,
           m.mode, null, null, null, null, null, null, null, null, null, null, null,
           null, m.amount, instr(m.amount, 'E'), 2, m.id
    from live_margin_changes m join trades t on t.id = m.trade_id
    where t.portfolio_id = ? and m.at >= ? and m.at < ?
    union all
    select f.kind, cast(f.trade_id as text), f.at, t.symbol, t.side, t.kind,
           null, null, null, null, null, null, null, null, null, null, null, f.note,
           null, f.amount, instr(f.amount, 'E'), 3, f.id
    from live_cash_flows f left join trades t on t.id = f.trade_id
    where f.portfolio_id = ? and f.kind in ('deposit', 'withdrawal', 'funding') and f.at >= ? and f.at < ?
"""
# Text that exercises every escaping rule of JSON: quotes, backslashes, control characters, non-ASCII.
JSON_PROBE = 'q"b\\t\tn\nr\rc\x01\x1f\x7f\x00 é ✓ 🚀 \u2028\b\f'


def fill_params(portfolio: Portfolio, since: datetime | None, until: datetime | None) -> list[Any]:
    low = codec.timestamp(since) if since else ""
    high = codec.timestamp(until) if until else "9999"
    return [portfolio.id, low, high] * 4


def sqlite_json_is_canonical(conn: sqlite3.Connection) -> bool:
    """Whether SQLite's json_object encodes as ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` does (true of the SQLite versions tried; checked rather than assumed)."""
    try:
        (encoded,) = conn.execute("select json_object('a', ?, 'b', null, 'c', '1.5')", [JSON_PROBE]).fetchone()
    except sqlite3.OperationalError:  # built without JSON support
        return False
    canonical = {"a": JSON_PROBE, "b": None, "c": "1.5"}
    return encoded == json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


FILL_MONEY = {"qty", "price", "price_usdt", "fee", "realized_pnl", "stop_loss", "take_profit", "amount"}
POSITION_MONEY = ("qty", "entry_usdt", "mark", "mark_usdt", "value", "unrealized_pnl", "margin")


def snapshot_row(snap: Snapshot, written_at: str) -> dict[str, Any]:
    return {
        "portfolio_id": snap.portfolio_id,
        "day": snap.day.isoformat(),
        "taken_at": codec.timestamp(snap.taken_at),
        "written_at": written_at,
        "backfilled": int(snap.backfilled),
        **{key: codec.money(getattr(snap, key)) for key in SNAPSHOT_MONEY},
        "margin_level_pct": codec.optional_money(snap.margin_level_pct),
    }


def snapshot_position_row(snapshot_id: int, p: SnapshotPosition) -> dict[str, Any]:
    return {
        "snapshot_id": snapshot_id,
        "trade_id": p.trade_id,
        "symbol": p.symbol,
        "side": p.side.value,
        "kind": p.kind.value,
        **{key: codec.money(getattr(p, key)) for key in POSITION_MONEY},
        "price_at": codec.timestamp(p.price_at),
        "price_source": p.price_source,
    }


def snapshot(r: sqlite3.Row, positions: tuple[SnapshotPosition, ...]) -> Snapshot:
    return Snapshot(
        portfolio_id=r["portfolio_id"],
        day=date.fromisoformat(r["day"]),
        taken_at=codec.moment(r["taken_at"]),
        backfilled=bool(r["backfilled"]),
        **{key: codec.decimal(r[key]) for key in SNAPSHOT_MONEY},
        margin_level_pct=codec.optional_decimal(r["margin_level_pct"]),
        positions=positions,
    )


def snapshot_position(r: sqlite3.Row) -> SnapshotPosition:
    return SnapshotPosition(
        trade_id=r["trade_id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        kind=Kind(r["kind"]),
        **{key: codec.decimal(r[key]) for key in POSITION_MONEY},
        price_at=codec.moment(r["price_at"]),
        price_source=r["price_source"],
    )


def rebalance_row(event: RebalanceEvent) -> dict[str, Any]:
    def weights(rows: tuple[tuple[str, Decimal | None, Decimal], ...]) -> str:
        return json.dumps(
            [{"asset": a, "target": codec.optional_money(t), "weight": codec.money(w)} for a, t, w in rows]
        )

    return {
        "portfolio_id": event.portfolio_id,
        "at": codec.timestamp(event.at),
        "strategy": event.strategy,
        "mode": event.mode,
        "forced": int(event.forced),
        "drift_before": codec.money(event.drift_before),
        "drift_after": codec.money(event.drift_after),
        "fees": codec.money(event.fees),
        "before": weights(event.before),
        "after": weights(event.after),
        "trades": json.dumps(list(event.trades)),
    }


def rebalance(r: sqlite3.Row) -> RebalanceEvent:
    def weights(text: str) -> tuple[tuple[str, Decimal | None, Decimal], ...]:
        return tuple(
            (w["asset"], codec.optional_decimal(w["target"]), codec.decimal(w["weight"])) for w in json.loads(text)
        )

    return RebalanceEvent(
        id=r["id"],
        portfolio_id=r["portfolio_id"],
        at=codec.moment(r["at"]),
        strategy=r["strategy"],
        mode=r["mode"],
        forced=bool(r["forced"]),
        drift_before=codec.decimal(r["drift_before"]),
        drift_after=codec.decimal(r["drift_after"]),
        fees=codec.decimal(r["fees"]),
        before=weights(r["before"]),
        after=weights(r["after"]),
        trades=tuple(json.loads(r["trades"])),
    )


# A void's rows by the engine's names (engine/records.py, ``Void.rows``), to the tables the ``live_*``
# views filter (migrations.m014_voids).
VOIDED_TABLES = {
    "trade": "trades",
    "close": "closes",
    "cash_flow": "cash_flows",
    "margin_change": "margin_changes",
    "amendment": "amendments",
}


def void(r: sqlite3.Row, rows: tuple[tuple[str, int], ...]) -> Void:
    return Void(
        id=r["id"],
        at=codec.moment(r["at"]),
        record=VoidKind(r["record"]),
        record_id=r["record_id"],
        record_at=codec.moment(r["record_at"]),
        reason=r["reason"],
        summary=r["summary"],
        rows=rows,
    )
