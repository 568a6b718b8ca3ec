"""What the exchange says about a market: the rules an order must meet there (lot step, minimums,
price tick, price band), as Binance's filters give them. The checks that apply them live in
``engine.rules``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class PriceBand:
    """Binance's PERCENT_PRICE filters: an order's price must lie within multipliers of the market's
    price (spot: its recent average, here the last price; a perpetual: its mark). A buy may be priced
    in ``[ref × buy_down, ref × buy_up]``, a sell in ``[ref × sell_down, ref × sell_up]``
    (PERCENT_PRICE_BY_SIDE's bid and ask multipliers; PERCENT_PRICE uses one pair for both)."""

    buy_down: Decimal
    buy_up: Decimal
    sell_down: Decimal
    sell_up: Decimal
    source: str  # the filter: PERCENT_PRICE_BY_SIDE or PERCENT_PRICE

    def limits(self, reference: Decimal, buy: bool) -> tuple[Decimal, Decimal]:
        down, up = (self.buy_down, self.buy_up) if buy else (self.sell_down, self.sell_up)
        return reference * down, reference * up


@dataclass(frozen=True)
class MarketRules:
    """Binance's rules for a pair or perpetual: lot step, minimum quantity, minimum notional (in the
    quote currency), the market-order maximum quantity (MARKET_LOT_SIZE), the price tick, and for a
    perpetual its clearance fee rate (``liquidationFee``)."""

    symbol: str
    amount_step: Decimal | None
    min_qty: Decimal | None
    min_notional: Decimal | None
    active: bool = True
    max_market_qty: Decimal | None = None
    price_step: Decimal | None = None  # the tick: prices are shown to it
    liquidation_fee: Decimal | None = None
    price_band: PriceBand | None = None  # PERCENT_PRICE(_BY_SIDE)
