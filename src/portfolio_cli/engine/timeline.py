"""A record dated in the past, against the records after it (DESIGN §2, time).

The state at a moment is the fold of the records up to it (``engine.history.records_at``). A
backdated record is validated against the state at its own moment, and it must not break a record
already booked after it:

- a close may not close more than the trade's later closes leave open, nor change the quantity a
  later funding payment was booked on;
- free margin: each later record that needed free margin (a trade opened, an order placed, a
  withdrawal, margin added) had ``F ≥ 0`` after it. If the backdated record turns that ``F``
  negative where it was not, the record is refused, naming the later one. ``F = E − H − M − R`` at
  that record's moment, at that moment's prices, ``R`` the margin the orders open then reserve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from portfolio_cli import formatting as fmt
from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.brackets import Brackets
from portfolio_cli.engine.history import records_at
from portfolio_cli.engine.orders import reserved_at
from portfolio_cli.engine.records import CashFlow, Close, FlowKind, MarginChange, Order, OrderEnd, Trade
from portfolio_cli.engine.valuation import Mark, value_portfolio


@dataclass(frozen=True)
class Records:
    """A portfolio's records; ``at`` folds those dated up to a moment."""

    trades: tuple[Trade, ...] = ()
    closes: tuple[Close, ...] = ()
    margin_changes: tuple[MarginChange, ...] = ()
    flows: tuple[CashFlow, ...] = field(default=())
    orders: tuple[Order, ...] = ()
    order_ends: tuple[OrderEnd, ...] = ()

    def at(self, moment: datetime) -> tuple[list[Lot], list[CashFlow]]:
        return records_at(moment, self.trades, self.closes, self.margin_changes, self.flows)

    def reserved_at(self, moment: datetime) -> Decimal:
        """The margin the orders open at ``moment`` hold."""
        return reserved_at(list(self.orders), list(self.order_ends), moment)

    def open_symbols_at(self, moment: datetime) -> set[str]:
        lots, _ = self.at(moment)
        return {lot.trade.symbol for lot in lots if lot.open_qty_at(moment) > 0}

    def plus(
        self,
        trades: Iterable[Trade] = (),
        closes: Iterable[Close] = (),
        flows: Iterable[CashFlow] = (),
        orders: Iterable[Order] = (),
    ) -> Records:
        """These records with new ones added (a new trade is given a free id)."""
        new_id = max((t.id for t in self.trades), default=0) + 1
        added = []
        for t in trades:
            if t.id == 0:
                t, new_id = replace(t, id=new_id), new_id + 1
            added.append(t)
        return replace(
            self,
            trades=self.trades + tuple(added),
            closes=self.closes + tuple(closes),
            flows=self.flows + tuple(flows),
            orders=self.orders + tuple(orders),
        )


@dataclass(frozen=True)
class LaterNeed:
    """A record after the backdated one that needed free margin when it was booked."""

    at: datetime
    what: str


def later_needs(records: Records, after: datetime) -> list[LaterNeed]:
    """Records dated after ``after`` that needed free margin: trades opened, orders placed, withdrawals,
    margin added."""
    when = "%Y-%m-%d %H:%M"
    needs = [
        LaterNeed(t.opened_at, f"trade {t.id} ({t.symbol}, opened {t.opened_at:{when}} UTC)")
        for t in records.trades
        if t.opened_at > after
    ]
    needs += [
        LaterNeed(o.placed_at, f"order {o.id} ({o.symbol}, placed {o.placed_at:{when}} UTC)")
        for o in records.orders
        if o.placed_at > after
    ]
    needs += [
        LaterNeed(f.at, f"the withdrawal of {-f.amount} USDT at {f.at:{when}} UTC")
        for f in records.flows
        if f.kind is FlowKind.WITHDRAWAL and f.at > after
    ]
    needs += [
        LaterNeed(m.at, f"the margin added to trade {m.trade_id} at {m.at:{when}} UTC")
        for m in records.margin_changes
        if m.amount > 0 and m.mode is None and m.at > after
    ]
    return sorted(needs, key=lambda n: n.at)


def free_margin_at(
    records: Records, moment: datetime, marks: Mapping[str, Mark], brackets: Brackets
) -> Decimal:
    lots, flows = records.at(moment)
    return value_portfolio(flows, lots, marks, brackets, reserved=records.reserved_at(moment)).free_margin


def free_margin_conflict(
    before: Records,
    after: Records,
    needs: Sequence[LaterNeed],
    marks_at: Mapping[datetime, Mapping[str, Mark]],
    brackets: Brackets,
) -> str | None:
    """The first later record whose free margin the new records would turn negative, or None."""
    for need in needs:
        marks = marks_at[need.at]
        now_free = free_margin_at(after, need.at, marks, brackets)
        if now_free < 0 <= free_margin_at(before, need.at, marks, brackets):
            return (
                f"it would leave {need.what} without the free margin it needed "
                f"(free margin then would be {fmt.money(now_free)} USDT)"
            )
    return None


def close_conflict(records: Records, trade_id: int, qty: Decimal, moment: datetime) -> str | None:
    """Why closing ``qty`` of trade ``trade_id`` at ``moment`` would break a later record, or None."""
    trade = next(t for t in records.trades if t.id == trade_id)
    closes = [c for c in records.closes if c.trade_id == trade_id]
    left = trade.qty - sum((c.qty for c in closes), Decimal(0))
    later = [c for c in closes if c.closed_at > moment]
    if qty > left and later:
        last = max(later, key=lambda c: c.closed_at)
        return (
            f"trade {trade_id} is closed by a later close ({_qty(last.qty)} at "
            f"{last.closed_at:%Y-%m-%d %H:%M} UTC): only {_qty(left)} is left to close"
        )
    funded = [f for f in records.flows if f.kind is FlowKind.FUNDING and f.trade_id == trade_id and f.at > moment]
    if funded:
        first = min(f.at for f in funded)
        return (
            f"funding of trade {trade_id} was booked after it, from {first:%Y-%m-%d %H:%M} UTC, on the quantity "
            f"then open"
        )
    return None


def _qty(value: Decimal) -> str:
    return format(value.normalize(), "f")
