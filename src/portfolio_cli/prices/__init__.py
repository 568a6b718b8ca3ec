"""Where prices come from: Binance through ccxt, a quotes file, the bundled demo, the ledger's cache."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from portfolio_cli.engine.market import MarketRules
from portfolio_cli.engine.records import Candle


@dataclass(frozen=True)
class Quote:
    """A symbol's last price at a moment."""

    symbol: str
    price: Decimal  # in the pair's quote currency
    at: datetime
    change_24h_pct: Decimal | None = None  # the exchange's rolling 24-hour change, when it sends one


class PriceSource(Protocol):
    name: str

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        """The latest quote of every symbol, in one request. Unknown symbols raise NotFound."""
        ...

    def rules(self, symbol: str) -> MarketRules | None:
        """The pair's trading rules, or None when they cannot be known (offline without a cache)."""
        ...

    def pairs(self) -> frozenset[str] | None:
        """Every pair the markets list holds (loaded as ``rules`` loads it), or None when it cannot be known."""
        ...

    def ticks(self) -> dict[str, Decimal]:
        """Each market's price tick, as far as it is known without a request (for showing prices)."""
        ...

    def price_at(self, symbol: str, at: datetime) -> Quote:
        """The price at a past moment (the open of the minute containing ``at``)."""
        ...

    def candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        """Complete candles opening in ``[since, until)``, oldest first. Raises ExchangeUnavailable."""
        ...

    def funding_rates(self, symbol: str, since: datetime, until: datetime) -> dict[datetime, FundingRate]:
        """Perpetual funding rates by funding time in ``[since, until]``. Raises ExchangeUnavailable."""
        ...


@dataclass(frozen=True)
class FundingRate:
    """A perpetual's funding rate at one funding time."""

    at: datetime
    rate: Decimal
    mark_price: Decimal | None = None


@dataclass(frozen=True)
class OrderBook:
    """Bids (best first, descending) and asks (best first, ascending) as (price, quantity)."""

    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    at: datetime


TIMEFRAMES = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}


def floor_time(moment: datetime, timeframe: str) -> datetime:
    """The open time of the ``timeframe`` candle containing ``moment`` (UTC-aligned)."""
    step = int(TIMEFRAMES[timeframe].total_seconds())
    seconds = int(moment.timestamp()) // step * step
    return datetime.fromtimestamp(seconds, moment.tzinfo)
