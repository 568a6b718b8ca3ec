"""Pending orders: what they hold, and what a candle does to them.

- A **limit** buy (a long) at ``P`` rests below the market and fills at ``P`` when a candle's low
  reaches it; a limit sell (a short) rests above and fills at ``P`` when the high does. It is a
  maker order: the maker fee.
- A **stop-entry** buy at ``P`` rests above the market and triggers when a candle's high reaches
  it; a stop-entry sell below, when the low does. It fills at ``P``, or at the candle's open when
  the candle opened beyond it (a gap). It is a taker order: the taker fee.
- An open order **reserves** the margin it will need, ``qty × P / L`` (spot: its cost ``qty × P``),
  in USDT; the reservation counts against free margin until the order fills, is cancelled or expires.
- An order placed during a candle acts from the next whole candle; one expiring at ``x`` is
  cancelled by the first candle opening at or after ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from portfolio_cli.engine.records import Kind, Order, OrderEnd, OrderStatus, OrderType, Side
from portfolio_cli.money import q8


@dataclass(frozen=True)
class OrderFill:
    """Where a resting order fills: its price, whether as a maker, whether the market gapped through it."""

    price: Decimal
    maker: bool
    gapped: bool


def reservation(kind: Kind, qty: Decimal, price_usdt: Decimal, leverage: int) -> Decimal:
    """The margin an order holds: ``qty × price / L`` (spot: ``qty × price``)."""
    return q8(qty * price_usdt if kind is Kind.SPOT else qty * price_usdt / leverage)


def wrong_side(side: Side, order_type: OrderType, price: Decimal, market: Decimal) -> str | None:
    """Why an order at ``price`` would fill at once at ``market`` (it belongs on the other side), or None."""
    buy = side is Side.LONG
    if order_type is OrderType.LIMIT:
        if buy and price >= market:
            return f"a limit buy at {price} is at or above the market {market}: it would fill at once (use open)"
        if not buy and price <= market:
            return f"a limit sell at {price} is at or below the market {market}: it would fill at once (use open)"
    else:
        if buy and price <= market:
            return f"a stop-entry buy at {price} is at or below the market {market}: it would trigger at once"
        if not buy and price >= market:
            return f"a stop-entry sell at {price} is at or above the market {market}: it would trigger at once"
    return None


def candle_fill(order: Order, open_: Decimal, high: Decimal, low: Decimal) -> OrderFill | None:
    """What one candle does to an open order (see the module's rules), or None."""
    buy = order.side is Side.LONG
    p = order.price
    if order.order_type is OrderType.LIMIT:
        reached = low <= p if buy else high >= p
        return OrderFill(p, maker=True, gapped=False) if reached else None
    gapped = open_ >= p if buy else open_ <= p
    if gapped:
        return OrderFill(open_, maker=False, gapped=True)
    reached = high >= p if buy else low <= p
    return OrderFill(p, maker=False, gapped=False) if reached else None


def is_open_at(order: Order, ends: dict[int, OrderEnd], moment: datetime) -> bool:
    """Placed at or before ``moment`` and not ended by then."""
    end = ends.get(order.id)
    return order.placed_at <= moment and (end is None or end.at > moment)


def reserved_at(orders: list[Order], ends: list[OrderEnd], moment: datetime) -> Decimal:
    """The margin the orders open at ``moment`` hold."""
    by_order = {e.order_id: e for e in ends}
    return sum((o.reserved for o in orders if is_open_at(o, by_order, moment)), Decimal(0))


def status_of(order: Order, ends: dict[int, OrderEnd]) -> OrderStatus:
    end = ends.get(order.id)
    return OrderStatus.OPEN if end is None else end.status
