"""Where prices come from: Binance through ccxt, a quotes file, the bundled demo, the ledger's cache."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from portfolio_cli.engine.rules import MarketRules


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: Decimal  # in the pair's quote currency
    at: datetime


class PriceSource(Protocol):
    name: str

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        """The latest quote of every symbol, in one request. Unknown symbols raise NotFound."""
        ...

    def rules(self, symbol: str) -> MarketRules | None:
        """The pair's trading rules, or None when they cannot be known (offline without a cache)."""
        ...

    def price_at(self, symbol: str, at: datetime) -> Quote:
        """The price at a past moment (the open of the minute containing ``at``)."""
        ...
