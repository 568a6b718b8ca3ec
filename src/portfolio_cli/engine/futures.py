"""Binance's USDⓈ-M formulas over a bracket table (see engine/margin.py for the whole account).

- liquidation price ``LP = (WB − TMM1 + UPNL1 + cum − s·q·e) / (q·mmr − s·q)`` (Binance FAQ "How to
  Calculate Liquidation Price of USDⓈ-M Futures Contracts", one-way mode), the bracket taken at the
  notional ``q·LP``
- margin ratio ``MM / margin balance × 100``; Binance liquidates when it reaches 100 %
"""

from __future__ import annotations

from decimal import Decimal

from portfolio_cli.engine.brackets import BracketTable
from portfolio_cli.engine.records import Side
from portfolio_cli.money import ZERO, pct_of, q8


def liquidation_price(
    side: Side,
    qty: Decimal,
    entry: Decimal,
    table: BracketTable,
    wallet: Decimal,
    other_mm: Decimal = ZERO,
    other_upnl: Decimal = ZERO,
) -> Decimal | None:
    """Binance's ``LP = (WB − TMM1 + UPNL1 + cum − s·q·e) / (q·mmr − s·q)``, the bracket taken at
    ``q·LP``. Isolated: ``wallet`` is the position's margin and the others are 0. None when the
    position cannot be liquidated (a long whose LP is not above 0)."""
    if qty <= 0:
        return None
    s = side.sign
    fallback = None
    for bracket in table.brackets:
        denominator = qty * bracket.mmr - s * qty
        if denominator == 0:
            continue
        price = (wallet - other_mm + other_upnl + bracket.cum - s * qty * entry) / denominator
        notional = qty * price
        if fallback is None:
            fallback = price
        # MM is continuous in the notional, so exactly one bracket holds its own solution.
        if (bracket.floor < notional or bracket.number == 1) and (
            notional <= bracket.cap or bracket is table.brackets[-1]
        ):
            return q8(price) if price > 0 else None
    return q8(fallback) if fallback is not None and fallback > 0 else None


def margin_ratio_pct(maintenance: Decimal, balance: Decimal) -> Decimal | None:
    """``MM / margin balance × 100``; a balance at or below 0 is past liquidation (shown as None)."""
    if maintenance <= 0 and balance > 0:
        return ZERO.quantize(Decimal("0.01"))
    if balance <= 0:
        return None
    return pct_of(maintenance, balance)


def is_liquidated(maintenance: Decimal, balance: Decimal) -> bool:
    """Binance's trigger: the margin ratio has reached 100 % (MM ≥ margin balance)."""
    return maintenance > 0 and maintenance >= balance
