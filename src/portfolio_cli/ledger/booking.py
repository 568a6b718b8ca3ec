"""Writing records. Every write happens inside ``Ledger.transaction`` and is logged for audit."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from portfolio_cli.engine.records import (
    Close,
    CloseReason,
    FlowKind,
    MarginChange,
    Portfolio,
    RebalanceEvent,
    Snapshot,
    Trade,
)
from portfolio_cli.errors import LedgerFailure
from portfolio_cli.ledger import codec, rowmap
from portfolio_cli.ledger.queries import Queries


class Booking(Queries):
    """The ledger's writes (records, checks, snapshots); they read through ``Queries`` to refuse
    what would break a record already booked."""

    def create_portfolio(self, name: str, at: datetime) -> Portfolio:
        if self.find_portfolio(name) is not None:
            raise LedgerFailure(f"portfolio {name!r} already exists")
        row_id = self._write("portfolios", {"name": name, "created_at": codec.timestamp(at)}, "create portfolio", None)
        return Portfolio(row_id, name, at)

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

    def add_rebalance(self, event: RebalanceEvent) -> int:
        return self._write("rebalances", rowmap.rebalance_row(event), "rebalance", event.portfolio_id)

    def set_rebalance_trades(self, rebalance_id: int, trades: list[dict[str, Any]]) -> None:
        """Record the trades a rebalance booked (they are booked after its row, to carry its id)."""
        if self._command is None:
            raise RuntimeError("ledger writes must happen inside Ledger.transaction()")
        self.conn.execute("update rebalances set trades = ? where id = ?", [json.dumps(trades), rebalance_id])
        self.audit("rebalance trades", None, {"rebalance_id": rebalance_id, "trades": trades})

    def add_margin_change(self, portfolio: Portfolio, change: MarginChange) -> int:
        row = {
            "trade_id": change.trade_id,
            "at": codec.timestamp(change.at),
            "amount": codec.money(change.amount),
            "mode": change.mode.value if change.mode else None,
        }
        return self._write("margin_changes", row, "change margin", portfolio.id)

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
