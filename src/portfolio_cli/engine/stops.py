"""A trade's exit levels at a moment: its stop-loss, take-profit and trailing stop, after its amendments.

A trailing stop of ``pct`` follows the best price since it was set (the fill at open, the market
price at an amendment): for a long the highest price ``b``, the stop at ``b × (1 − pct/100)``; for
a short the lowest, the stop at ``b × (1 + pct/100)``, rounded to 8 places towards the position
(down for a long, up for a short). It only ever moves in the trader's favour.

Replaying candles (``check``): within one candle the order of its high and low is unknown, so a
candle is tested against the level as it stood at its open (a candle that opens through it fills at
its open, as any stop), and only then does its high (a short: its low) move the best price. A fixed
stop-loss and a trailing stop may both be set: the nearer of the two to the price acts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from portfolio_cli.engine.records import Amendment, Candle, CloseReason, Side, Trade
from portfolio_cli.engine.triggers import Trigger, first_trigger
from portfolio_cli.money import HUNDRED

STOP_LOSS, TAKE_PROFIT, TRAILING_STOP = "stop_loss", "take_profit", "trailing_stop"
_PLACES = Decimal("0.00000001")


@dataclass(frozen=True)
class Stops:
    """The exit levels in force; ``trail_from`` and ``reference`` say where the trailing stop began."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_pct: Decimal | None = None
    trail_from: datetime | None = None
    reference: Decimal | None = None


def stops_at(trade: Trade, amendments: Iterable[Amendment], moment: datetime | None = None) -> Stops:
    """The levels in force at ``moment`` (all amendments when None): the trade's own, then each
    amendment effective at or before ``moment``, in time order."""
    stop, take, pct = trade.stop_loss, trade.take_profit, trade.trailing_pct
    trail_from, reference = (trade.opened_at, trade.price) if pct is not None else (None, None)
    for a in sorted((a for a in amendments if a.trade_id == trade.id), key=lambda a: (a.at, a.id)):
        if moment is not None and a.at > moment:
            break
        if STOP_LOSS in a.removed:
            stop = None
        if TAKE_PROFIT in a.removed:
            take = None
        if TRAILING_STOP in a.removed:
            pct = trail_from = reference = None
        stop = a.stop_loss if a.stop_loss is not None else stop
        take = a.take_profit if a.take_profit is not None else take
        if a.trailing_pct is not None:
            pct, trail_from, reference = a.trailing_pct, a.at, a.reference
    return Stops(stop, take, pct, trail_from, reference)


def trail_level(side: Side, best: Decimal, pct: Decimal) -> Decimal:
    """The trailing stop for the best price ``best``: ``b × (1 − pct/100)`` long, ``b × (1 + pct/100)`` short."""
    if side is Side.LONG:
        return (best * (1 - pct / HUNDRED)).quantize(_PLACES, rounding=ROUND_FLOOR)
    return (best * (1 + pct / HUNDRED)).quantize(_PLACES, rounding=ROUND_CEILING)


def follow(side: Side, best: Decimal, high: Decimal, low: Decimal) -> Decimal:
    """The best price after a candle (or a price, ``high == low``): the higher for a long, the lower for a short."""
    return max(best, high) if side is Side.LONG else min(best, low)


def best_since(side: Side, reference: Decimal, candles: Sequence[Candle], trail_from: datetime) -> Decimal:
    """The best price from ``reference`` over the whole candles opening at or after ``trail_from``."""
    best = reference
    for c in candles:
        if c.open_time >= trail_from:
            best = follow(side, best, c.high, c.low)
    return best


def nearer_stop(side: Side, fixed: Decimal | None, trailing: Decimal | None) -> tuple[Decimal | None, bool]:
    """The stop that acts first of a fixed stop and a trailing level, and whether it is the trailing one."""
    if fixed is None or trailing is None:
        return (trailing, True) if fixed is None and trailing is not None else (fixed, False)
    if side is Side.LONG:
        return (trailing, True) if trailing > fixed else (fixed, False)
    return (trailing, True) if trailing < fixed else (fixed, False)


def stop_trigger(
    side: Side,
    open_: Decimal,
    high: Decimal,
    low: Decimal,
    stops: Stops,
    best: Decimal | None,
    liquidation: Decimal | None = None,
) -> Trigger | None:
    """What a candle does to a position with these levels, the trailing one at ``best`` (see
    engine/triggers.py); a stop that fires at the trailing level is a ``trailing_stop``."""
    trailing = trail_level(side, best, stops.trailing_pct) if stops.trailing_pct is not None and best else None
    stop, is_trailing = nearer_stop(side, stops.stop_loss, trailing)
    trigger = first_trigger(side, open_, high, low, stop, stops.take_profit, liquidation)
    if trigger is not None and is_trailing and trigger.reason is CloseReason.STOP_LOSS:
        return Trigger(CloseReason.TRAILING_STOP, trigger.price, trigger.gapped)
    return trigger
