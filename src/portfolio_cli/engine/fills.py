"""A market order's fill from Binance's order book (DESIGN §3, "Fills").

A buy takes the asks and a sell the bids, best first, each level's quantity at its price, until the
order is filled. The fill price is the volume-weighted average ``Σ pᵢ·qᵢ / Σ qᵢ`` of what it took.
Only levels within ``cap_pct`` of the reference (the last price) are taken: an order the book cannot
fill inside that distance is refused, never filled at a price the trader did not expect. The fill
says how far it moved from the reference: ``(vwap − ref) / ref × 100`` (positive = against a buy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from portfolio_cli.money import HUNDRED, ZERO, q8


@dataclass(frozen=True)
class BookFill:
    price: Decimal  # the volume-weighted average, 8 places
    levels: int  # how many price levels it took
    reference: Decimal
    moved_pct: Decimal  # from the reference, signed: + is a higher price


@dataclass(frozen=True)
class BookTooThin:
    """The book within the cap holds less than the order."""

    available: Decimal
    cap_pct: Decimal
    limit_price: Decimal

    def __str__(self) -> str:
        return (
            f"the order book holds only {self.available.normalize():f} within {self.cap_pct.normalize():f} % "
            f"of the last price (up to {self.limit_price.normalize():f})"
        )


def walk_book(
    levels: Sequence[tuple[Decimal, Decimal]], qty: Decimal, reference: Decimal, buy: bool, cap_pct: Decimal
) -> BookFill | BookTooThin:
    """Fill ``qty`` from ``levels`` (asks for a buy, bids for a sell, best first)."""
    limit = reference * (1 + cap_pct / HUNDRED) if buy else reference * (1 - cap_pct / HUNDRED)
    left, cost, used = qty, ZERO, 0
    for price, size in levels:
        if left <= 0:
            break
        if (price > limit) if buy else (price < limit):
            break
        take = min(size, left)
        if take <= 0:
            continue
        cost += take * price
        left -= take
        used += 1
    if left > 0:
        return BookTooThin(qty - left, cap_pct, q8(limit))
    vwap = q8(cost / qty)
    return BookFill(vwap, used, reference, ((vwap - reference) / reference * HUNDRED).quantize(Decimal("0.0001")))
