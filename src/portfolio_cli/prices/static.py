"""Prices from a file: the bundled demo data, or a trader's own JSON/CSV quotes.

JSON: ``{"as_of": "2026-01-01T00:00:00Z", "quotes": {"BTC/USDT": "43000"}, "markets": {...}}``
(``markets`` optional: ``{"BTC/USDT": {"amount_step": "0.00001", "min_notional": "5"}}``).
CSV: a header ``symbol,price[,at]`` and a row per symbol.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path

from portfolio_cli.engine.market import MarketRules
from portfolio_cli.engine.records import Candle
from portfolio_cli.errors import ConfigInvalid, ExchangeUnavailable, PriceUnavailable
from portfolio_cli.money import D
from portfolio_cli.prices import FundingRate, Quote


class StaticSource:
    def __init__(self, name: str, quotes: dict[str, Quote], rules: dict[str, MarketRules]):
        self.name = name
        self._quotes = quotes
        self._rules = rules

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        return {s: self._quotes[s] for s in symbols if s in self._quotes}

    def rules(self, symbol: str) -> MarketRules | None:
        return self._rules.get(symbol)

    def pairs(self) -> frozenset[str] | None:
        return frozenset(self._rules) or None

    def ticks(self) -> dict[str, Decimal]:
        return {s: r.price_step for s, r in self._rules.items() if r.price_step}

    def price_at(self, symbol: str, at: datetime) -> Quote:
        raise PriceUnavailable(
            f"no price for {symbol} at {at:%Y-%m-%d %H:%M} UTC in the {self.name} prices; pass --price"
        )

    def candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        raise ExchangeUnavailable(f"the {self.name} prices have no candles")

    def funding_rates(self, symbol: str, since: datetime, until: datetime) -> dict[datetime, FundingRate]:
        raise ExchangeUnavailable(f"the {self.name} prices have no funding rates")

    @property
    def as_of(self) -> datetime | None:
        return min((q.at for q in self._quotes.values()), default=None)


def demo_source() -> StaticSource:
    text = resources.files("portfolio_cli.demo").joinpath("prices.json").read_text()
    return _from_json("demo", json.loads(text, parse_float=Decimal), "bundled demo prices")


def file_source(path: Path) -> StaticSource:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigInvalid(f"cannot read prices file {path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() == ".csv":
            return _from_csv(text)
        return _from_json("file", json.loads(text, parse_float=Decimal), str(path))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigInvalid(f"prices file {path} is malformed: {exc}") from None


def _from_json(name: str, data: dict, origin: str) -> StaticSource:
    as_of_text = data.get("as_of")
    as_of = _parse_time(as_of_text) if as_of_text else datetime.now(UTC)
    quotes = {s: Quote(s, _price(v, s, origin), as_of) for s, v in data["quotes"].items()}
    rules = {
        s: MarketRules(
            symbol=s,
            amount_step=_optional(r.get("amount_step")),
            min_qty=_optional(r.get("min_qty")),
            min_notional=_optional(r.get("min_notional")),
        )
        for s, r in data.get("markets", {}).items()
    }
    return StaticSource(name, quotes, rules)


def _from_csv(text: str) -> StaticSource:
    quotes = {}
    for row in csv.DictReader(text.splitlines()):
        symbol = row["symbol"].strip().upper()
        at = _parse_time(row["at"]) if row.get("at") else datetime.now(UTC)
        quotes[symbol] = Quote(symbol, _price(row["price"], symbol, "csv"), at)
    return StaticSource("file", quotes, {})


def _price(value: object, symbol: str, origin: str) -> Decimal:
    price = D(str(value))
    if price <= 0:
        raise ValueError(f"{symbol} has a non-positive price in {origin}")
    return price


def _optional(value: object) -> Decimal | None:
    return None if value is None else D(str(value))


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
