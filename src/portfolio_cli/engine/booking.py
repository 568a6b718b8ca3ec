"""Bookings: what a command writes, decided here and written by ``Ledger.book`` alone (DESIGN §2).

A booking is a list of entries, each one record with the cash flows it carries:

- an opening fill: the trade, and its entry fee ``−fee`` (a flow of kind ``fee``);
- a closing fill: the close, its gross realized PnL ``s·c·(exit − e)``, and its fee ``−fee`` (a
  liquidation fee when the margin rules closed the position, else a trading fee);
- a deposit (``+amount``), a withdrawal (``−amount``) or a funding payment, each a flow alone;
- a margin change (added/removed isolated margin, or a mode switch), which moves no cash;
- an amendment of a trade's stop-loss, take-profit or trailing stop, which moves no cash;
- a pending order and its end (filled as a trade, cancelled, expired), which move no cash;
- a void, which takes a mistaken record and the flows booked with it out of every fold (engine/voids.py);
- the portfolio's check watermark, a rebalance event and its trades, and snapshots (derived state).

The recipe for a fill lives here once: ``open_entry`` and ``close_entry`` (and ``close_lots`` for a
close spread over lots, oldest first), whoever books it — ``open``/``close``, ``check``'s replay,
``import`` or the rebalancer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from portfolio_cli.engine.accounting import Lot, allocate_close, fee_for, realized_pnl
from portfolio_cli.engine.records import (
    Amendment,
    Order,
    OrderEnd,
    CashFlow,
    Close,
    CloseReason,
    FlowKind,
    MarginChange,
    RebalanceEvent,
    Snapshot,
    Trade,
    Void,
)


@dataclass(frozen=True)
class CheckMark:
    """``check`` has replayed the portfolio's market up to ``through``."""

    through: datetime
    events: int


@dataclass(frozen=True)
class RebalanceLink:
    """The trades a rebalance booked, recorded on its event (they are booked after it, to carry its id)."""

    rebalance_id: int
    trades: tuple[dict, ...]


Record = (
    Trade
    | Close
    | CashFlow
    | MarginChange
    | Amendment
    | Order
    | OrderEnd
    | Void
    | CheckMark
    | RebalanceEvent
    | RebalanceLink
)


@dataclass(frozen=True)
class Entry:
    """One record and the cash flows booked with it; a flow's ``trade_id`` is filled with the
    record's trade when the ledger books it (a new trade's id is known only then)."""

    record: Record
    flows: tuple[CashFlow, ...] = ()
    keep_id: bool = False  # an imported trade keeps the id it had (the caller checked it is free)
    overridden: tuple[str, ...] = ()  # the risk rules ``--force`` overrode, logged with the trade
    off_market: str | None = None  # a price outside Binance's band, taken with ``--off-market``: logged

    @property
    def at(self) -> datetime | None:
        """The record's effective time (None for derived state, which is never backdated)."""
        r = self.record
        if isinstance(r, Trade):
            return r.opened_at
        if isinstance(r, Close):
            return r.closed_at
        if isinstance(r, CashFlow | MarginChange | Amendment | OrderEnd | RebalanceEvent):
            return r.at
        if isinstance(r, Order):
            return r.placed_at
        if isinstance(r, Void):  # the state changes from the voided record's moment on
            return r.record_at
        return None


@dataclass(frozen=True)
class Booking:
    """What the engine decided: the entries to book, the snapshots to write, and what it saw."""

    entries: tuple[Entry, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    events: tuple = field(default=(), compare=False)  # what the engine saw, for the command's output

    def __add__(self, other: Booking) -> Booking:
        return Booking(self.entries + other.entries, self.snapshots + other.snapshots, self.events + other.events)

    def __bool__(self) -> bool:
        return bool(self.entries or self.snapshots)

    @property
    def earliest(self) -> datetime | None:
        """The earliest effective time among the records: derived state after it is stale."""
        times = [e.at for e in self.entries if e.at is not None]
        return min(times) if times else None


@dataclass(frozen=True)
class Booked:
    """The ids the ledger gave each entry's record, in the booking's order, and what the booking
    invalidated: the days whose snapshots it dropped (to rebuild once committed), and the moment the
    check watermark was rewound to (the next ``check`` replays from there)."""

    ids: tuple[int, ...]
    stale_days: tuple[date, ...] = ()
    rewound_to: datetime | None = None


def booking(entries: Iterable[Entry] = (), snapshots: Iterable[Snapshot] = ()) -> Booking:
    return Booking(tuple(entries), tuple(snapshots))


def open_entry(trade: Trade, overridden: Sequence[str] = (), keep_id: bool = False) -> Entry:
    """An opening fill: the trade and its entry fee."""
    fee = CashFlow(0, FlowKind.FEE, -trade.fee, trade.opened_at, trade.id or None, "entry fee")
    return Entry(trade, (fee,), keep_id=keep_id, overridden=tuple(overridden))


def close_entry(close: Close) -> Entry:
    """A closing fill: the close, its gross realized PnL and its fee (a liquidation fee when the
    margin rules closed the position, else a trading fee)."""
    fee_kind, note = (
        (FlowKind.LIQUIDATION_FEE, "liquidation fee") if close.reason.forced_out else (FlowKind.FEE, "exit fee")
    )
    flows = (
        CashFlow(0, FlowKind.REALIZED_PNL, close.realized_pnl, close.closed_at, close.trade_id),
        CashFlow(0, fee_kind, -close.fee, close.closed_at, close.trade_id, note),
    )
    return Entry(close, flows)


def fill_close(
    lot: Lot,
    qty: Decimal,
    price: Decimal,
    price_usdt: Decimal,
    fee_rate: Decimal,
    at: datetime,
    note: str | None = None,
    reason: CloseReason = CloseReason.MANUAL,
) -> Close:
    """A market close of ``qty`` of ``lot`` at ``price_usdt``: gross PnL ``s·qty·(exit − entry)``,
    fee ``qty × exit × fee rate``."""
    gross = realized_pnl(lot.trade.side, qty, lot.trade.price_usdt, price_usdt)
    fee = fee_for(qty, price_usdt, fee_rate)
    return Close(0, lot.trade.id, qty, price, price_usdt, fee, gross, at, note, reason)


def close_lots(
    lots: Sequence[Lot],
    qty: Decimal | None,
    price: Decimal,
    price_usdt: Decimal,
    fee_rate: Decimal,
    at: datetime,
    note: str | None = None,
) -> list[tuple[Lot, Close]]:
    """Close ``qty`` (all when None) over ``lots``, oldest first, each slice a market close."""
    return [
        (part.lot, fill_close(part.lot, part.qty, price, price_usdt, fee_rate, at, note))
        for part in allocate_close(lots, qty=qty)
    ]


def transfer_entry(kind: FlowKind, amount: Decimal, at: datetime, note: str | None = None) -> Entry:
    """A deposit (``+amount``) or a withdrawal (``−amount``); ``amount`` is given positive."""
    signed = amount if kind is FlowKind.DEPOSIT else -amount
    return Entry(CashFlow(0, kind, signed, at, None, note))


def funding_entry(trade_id: int, amount: Decimal, at: datetime, note: str) -> Entry:
    return Entry(CashFlow(0, FlowKind.FUNDING, amount, at, trade_id, note))


def margin_entry(change: MarginChange) -> Entry:
    return Entry(change)
