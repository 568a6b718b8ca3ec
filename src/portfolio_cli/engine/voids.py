"""Voiding a mistaken record (DESIGN §2, time: a mistaken record is voided by a record of its own).

A void reverses a trade (its opening fill and entry fee), a close (its fill, realized PnL and fee), a
deposit, a withdrawal, a margin change or an amendment as if it had never been booked: the void is a
record of its own, and every fold reads the records without what it voided. It is allowed only
while no later record depends on the voided one:

- a trade: no close of it (void the closes first), no funding booked on it, no margin change and no
  amendment of it (void those first), and no pending order it was filled from;
- a close: no funding of its trade booked after it (that funding was paid on the quantity then open);
- a margin change: no later margin change of its trade, no liquidation or margin call of it after
  it (both followed from its margin), and no funding of it booked after it;
- an amendment: no close of its trade at or after it (a close booked with the levels it set), and no
  funding of it booked after it (without the amendment, the next replay could close the trade
  before that funding);
- any record: each later record that needed free margin (a trade opened, a withdrawal, margin
  added) still has it without the voided one — ``timeline.free_margin_conflict``, at those
  moments' prices, as for a record dated in the past.

Then, as after a record dated at the voided one's moment, the snapshots from that moment on are
rebuilt and the check watermark rewinds to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli.engine.records import (
    Amendment,
    CashFlow,
    Close,
    CloseReason,
    FlowKind,
    MarginChange,
    Order,
    OrderEnd,
    Trade,
    Void,
    VoidKind,
)
from portfolio_cli.engine.timeline import Records
from portfolio_cli.money import ZERO

Voided = Trade | Close | CashFlow | MarginChange | Amendment
WHEN = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class Held:
    """A portfolio's live records, with its pending orders and their ends."""

    trades: Sequence[Trade] = ()
    closes: Sequence[Close] = ()
    flows: Sequence[CashFlow] = ()
    margin_changes: Sequence[MarginChange] = ()
    amendments: Sequence[Amendment] = ()
    orders: Sequence[Order] = ()
    order_ends: Sequence[OrderEnd] = ()

    @property
    def filled_from(self) -> Mapping[int, int]:
        """The trades filled from a pending order: trade id → order id."""
        return {e.trade_id: e.order_id for e in self.order_ends if e.trade_id is not None}

    def timeline(self, void: Void | None = None) -> Records:
        """The records as the timeline folds them; without what ``void`` takes out, if given."""
        gone = set(void.rows) if void else set()
        return Records(
            tuple(t for t in self.trades if ("trade", t.id) not in gone),
            tuple(c for c in self.closes if ("close", c.id) not in gone),
            tuple(m for m in self.margin_changes if ("margin_change", m.id) not in gone),
            tuple(f for f in self.flows if ("cash_flow", f.id) not in gone),
            tuple(self.orders),
            tuple(self.order_ends),
        )


def target_of(held: Held, kind: VoidKind, record_id: int) -> Voided | None:
    """The live record ``kind`` ``record_id`` names, or None."""
    pool: Sequence[Voided]
    if kind is VoidKind.TRADE:
        pool = held.trades
    elif kind is VoidKind.CLOSE:
        pool = held.closes
    elif kind is VoidKind.MARGIN_CHANGE:
        pool = held.margin_changes
    elif kind is VoidKind.AMENDMENT:
        pool = held.amendments
    else:
        flow_kind = FlowKind.DEPOSIT if kind is VoidKind.DEPOSIT else FlowKind.WITHDRAWAL
        pool = [f for f in held.flows if f.kind is flow_kind]
    return next((r for r in pool if r.id == record_id), None)


def moment_of(record: Voided) -> datetime:
    if isinstance(record, Trade):
        return record.opened_at
    if isinstance(record, Close):
        return record.closed_at
    return record.at


def void_refusal(held: Held, kind: VoidKind, record: Voided) -> str | None:
    """Why ``record`` cannot be voided because a later record depends on it, or None (the free
    margin of later records is weighed by the service, at their moments' prices)."""
    if isinstance(record, Trade):
        return _trade_refusal(held, record)
    if isinstance(record, Close):
        funded = _funding_of(held, record.trade_id, after=record.closed_at)
        if funded:
            return (
                f"close {record.id} of trade {record.trade_id} is followed by funding of that trade "
                f"(cash flow {funded[0].id} at {funded[0].at:{WHEN}} UTC), paid on the quantity the close left "
                "open: funding cannot be voided"
            )
        return None
    if isinstance(record, MarginChange | Amendment):
        what = "margin change" if isinstance(record, MarginChange) else "amendment"
        funded = _funding_of(held, record.trade_id, after=record.at)
        if funded:  # without it, the next replay could close the trade before that funding
            return (
                f"{what} {record.id} of trade {record.trade_id} is followed by funding of that trade "
                f"(cash flow {funded[0].id} at {funded[0].at:{WHEN}} UTC), paid on the position as it stood: "
                "funding cannot be voided"
            )
    if isinstance(record, MarginChange):
        later = [m for m in held.margin_changes if m.trade_id == record.trade_id and m.at > record.at]
        if later:
            return (
                f"margin change {record.id} of trade {record.trade_id} is followed by margin change {later[0].id} "
                f"({later[0].at:{WHEN}} UTC): void that first"
            )
        forced = [
            c for c in held.closes if c.trade_id == record.trade_id and c.closed_at >= record.at and c.reason.forced_out
        ]
        if forced:
            return (
                f"trade {record.trade_id} was closed by close {forced[0].id} ({forced[0].reason.value}) after margin "
                f"change {record.id}, from its margin: void the close first"
            )
        return None
    if isinstance(record, Amendment):
        later_closes = [c for c in held.closes if c.trade_id == record.trade_id and c.closed_at >= record.at]
        if later_closes:
            c = later_closes[-1]
            return (
                f"trade {record.trade_id} was closed by close {c.id} ({c.reason.value}, {c.closed_at:{WHEN}} UTC) "
                f"after amendment {record.id}, with the levels in force: void the close first"
            )
        return None
    return None  # a deposit or a withdrawal: only the free margin of later records depends on it


def _trade_refusal(held: Held, trade: Trade) -> str | None:
    closes = sorted((c for c in held.closes if c.trade_id == trade.id), key=lambda c: c.id)
    if closes:
        named = " and ".join(f"close {c.id}" for c in closes[-3:])
        what = "the close" if len(closes) == 1 else "the closes"
        return f"trade {trade.id} is closed by {named}: void {what} first"
    funded = _funding_of(held, trade.id)
    if funded:
        return (
            f"trade {trade.id} has funding booked on it (cash flow {funded[0].id} at {funded[0].at:{WHEN}} UTC): "
            "funding cannot be voided"
        )
    changes = [m for m in held.margin_changes if m.trade_id == trade.id]
    if changes:
        return f"trade {trade.id} has margin change {changes[-1].id}: void it first"
    amendments = [a for a in held.amendments if a.trade_id == trade.id]
    if amendments:
        last = max(amendments, key=lambda a: a.id)
        return f"trade {trade.id} is amended by amendment {last.id}: void it first"
    order = held.filled_from.get(trade.id)
    if order is not None:
        return f"trade {trade.id} was filled from order {order}: a filled order cannot be voided"
    return None


def _funding_of(held: Held, trade_id: int, after: datetime | None = None) -> list[CashFlow]:
    return sorted(
        (
            f
            for f in held.flows
            if f.kind is FlowKind.FUNDING and f.trade_id == trade_id and (after is None or f.at > after)
        ),
        key=lambda f: (f.at, f.id),
    )


def plan_void(held: Held, kind: VoidKind, record: Voided, reason: str, at: datetime) -> Void:
    """The void of ``record`` (checked by ``void_refusal`` first), entered at ``at``: the rows it takes
    out of the fold — the record and the cash flows booked with it — and what it undoes in words."""
    rows: list[tuple[str, int]]
    flows: list[CashFlow]
    if isinstance(record, Trade):
        flows = [f for f in held.flows if f.trade_id == record.id]  # its entry fee (nothing else is left)
        rows = [("trade", record.id)]
    elif isinstance(record, Close):
        flows = _close_flows(held, record)
        rows = [("close", record.id)]
    elif isinstance(record, CashFlow):
        flows, rows = [record], []
    elif isinstance(record, MarginChange):
        flows, rows = [], [("margin_change", record.id)]
    else:
        flows, rows = [], [("amendment", record.id)]
    rows += [("cash_flow", f.id) for f in flows]
    cash = sum((f.amount for f in flows), ZERO)
    return Void(0, at, kind, record.id, moment_of(record), reason, describe(held, record), tuple(rows), cash)


def _close_flows(held: Held, close: Close) -> list[CashFlow]:
    """The realized PnL and fee booked with ``close``: its trade's flows at its moment with its amounts.
    Closes alike at one moment share out flows alike, one pair each, in id order."""
    fee_kind = FlowKind.LIQUIDATION_FEE if close.reason.forced_out else FlowKind.FEE
    alike = sorted(
        (
            c
            for c in held.closes
            if c.trade_id == close.trade_id and c.closed_at == close.closed_at
            and (c.realized_pnl, c.fee, c.reason.forced_out) == (close.realized_pnl, close.fee, close.reason.forced_out)
        ),
        key=lambda c: c.id,
    )  # fmt: skip
    rank = [c.id for c in alike].index(close.id)
    found = []
    for kind, amount in ((FlowKind.REALIZED_PNL, close.realized_pnl), (fee_kind, -close.fee)):
        matching = sorted(
            (
                f
                for f in held.flows
                if f.trade_id == close.trade_id and f.at == close.closed_at and f.kind is kind and f.amount == amount
            ),
            key=lambda f: f.id,
        )
        if rank < len(matching):
            found.append(matching[rank])
    return found


def describe(held: Held, record: Voided) -> str:
    """A voided record in words, as it stood."""
    if isinstance(record, Trade):
        how = f"{record.leverage}x {record.margin_mode or 'margin'}" if record.kind.value == "margin" else "spot"
        return (
            f"open of {_num(record.qty)} {record.symbol} {record.side} {how} at {_num(record.price)} "
            f"({record.opened_at:{WHEN}} UTC, fee {_num(record.fee)} USDT)"
        )
    if isinstance(record, Close):
        symbol = next((t.symbol for t in held.trades if t.id == record.trade_id), "")
        reason = "" if record.reason is CloseReason.MANUAL else f", {record.reason.value}"
        return (
            f"close of {_num(record.qty)} {symbol} of trade {record.trade_id} at {_num(record.price)} "
            f"({record.closed_at:{WHEN}} UTC{reason}, realized PnL {_num(record.realized_pnl)} USDT, "
            f"fee {_num(record.fee)} USDT)"
        )
    if isinstance(record, CashFlow):
        return f"{record.kind.value} of {_num(abs(record.amount))} USDT ({record.at:{WHEN}} UTC)"
    if isinstance(record, MarginChange):
        if record.mode is not None:
            return f"switch of trade {record.trade_id} to {record.mode} margin ({record.at:{WHEN}} UTC)"
        verb = "added to" if record.amount > 0 else "removed from"
        return f"{_num(abs(record.amount))} USDT of margin {verb} trade {record.trade_id} ({record.at:{WHEN}} UTC)"
    levels = [
        f"{name} {_num(value)}"
        for name, value in (
            ("stop-loss", record.stop_loss),
            ("take-profit", record.take_profit),
            ("trailing stop %", record.trailing_pct),
        )
        if value is not None
    ]
    levels += [f"no {name.replace('_', '-')}" for name in record.removed]
    return f"amendment of trade {record.trade_id}: {', '.join(levels)} ({record.at:{WHEN}} UTC)"


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")
