"""What a candle does to a position's stop-loss, take-profit and liquidation price.

Within one candle the path between open, high and low is unknown, so:

- a level the market opened beyond was gapped through: a stop or take-profit fills at the open;
- otherwise adverse levels (stop, liquidation) are reached nearest-first from the open, and before
  the take-profit when both lie inside the candle (the cautious reading);
- liquidation always settles at the liquidation price (the position loses exactly its margin),
  and wins over a stop the market gapped through together with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from portfolio_cli.engine.records import CloseReason, Side


@dataclass(frozen=True)
class Trigger:
    """Why and at what price a position closes within a candle."""

    reason: CloseReason
    price: Decimal  # the fill, in the pair's quote currency
    gapped: bool


def first_trigger(
    side: Side,
    open_: Decimal,
    high: Decimal,
    low: Decimal,
    stop: Decimal | None = None,
    take_profit: Decimal | None = None,
    liquidation: Decimal | None = None,
) -> Trigger | None:
    long = side is Side.LONG

    def past(price: Decimal, level: Decimal) -> bool:  # price is at or beyond an adverse level
        return price <= level if long else price >= level

    def reached_favourable(price: Decimal, level: Decimal) -> bool:
        return price >= level if long else price <= level

    levels = ((stop, CloseReason.STOP_LOSS), (liquidation, CloseReason.LIQUIDATION))
    adverse = [(level, reason) for level, reason in levels if level is not None]
    adverse.sort(key=lambda item: -item[0] if long else item[0])  # the first a falling (rising) price meets
    if liquidation is not None and past(open_, liquidation):
        return Trigger(CloseReason.LIQUIDATION, liquidation, gapped=True)
    if stop is not None and past(open_, stop):
        return Trigger(CloseReason.STOP_LOSS, open_, gapped=True)
    if take_profit is not None and reached_favourable(open_, take_profit):
        return Trigger(CloseReason.TAKE_PROFIT, open_, gapped=True)
    worst = low if long else high
    for level, reason in adverse:
        if past(worst, level):
            return Trigger(reason, level, gapped=False)
    best = high if long else low
    if take_profit is not None and reached_favourable(best, take_profit):
        return Trigger(CloseReason.TAKE_PROFIT, take_profit, gapped=False)
    return None


def adverse_price(side: Side, high: Decimal, low: Decimal) -> Decimal:
    """The candle's worst price for the position: the low for a long, the high for a short."""
    return low if side is Side.LONG else high
