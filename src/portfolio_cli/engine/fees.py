"""Trading fee rates (Binance "Fee Schedule of Binance Futures", and its spot fee schedule).

A market order is a taker; an order that rested on the book (a limit order, here ``--maker`` with
``--price``) is a maker. Fee = ``qty × fill price × rate``.

- USDⓈ-M VIP tiers, (maker, taker): Regular 0.0200 % / 0.0500 %, VIP 1 0.0160 / 0.0400, VIP 2
  0.0140 / 0.0350, VIP 3 0.0120 / 0.0320, VIP 4 0.0100 / 0.0300, VIP 5 0.0080 / 0.0270, VIP 6
  0.0060 / 0.0250 %. With a tier set, it replaces the configured margin rates.
- paying fees in BNB: 10 % off on USDⓈ-M futures, 25 % off on spot.
"""

from __future__ import annotations

from decimal import Decimal

USDM_VIP_TIERS = {
    0: (Decimal("0.0002"), Decimal("0.0005")),
    1: (Decimal("0.00016"), Decimal("0.0004")),
    2: (Decimal("0.00014"), Decimal("0.00035")),
    3: (Decimal("0.00012"), Decimal("0.00032")),
    4: (Decimal("0.0001"), Decimal("0.0003")),
    5: (Decimal("0.00008"), Decimal("0.00027")),
    6: (Decimal("0.00006"), Decimal("0.00025")),
}
BNB_DISCOUNT = {"spot": Decimal("0.25"), "margin": Decimal("0.10")}


def fee_rate(
    margin: bool,
    maker: bool,
    spot: tuple[Decimal, Decimal],
    futures: tuple[Decimal, Decimal],
    vip_tier: int | None = None,
    bnb: bool = False,
) -> Decimal:
    """The rate for one fill. ``spot`` and ``futures`` are the configured (maker, taker) rates; a VIP
    tier replaces the futures ones; the BNB discount applies last."""
    if margin and vip_tier is not None:
        futures = USDM_VIP_TIERS[vip_tier]
    maker_rate, taker_rate = futures if margin else spot
    rate = maker_rate if maker else taker_rate
    if bnb:
        rate *= 1 - BNB_DISCOUNT["margin" if margin else "spot"]
    return rate
