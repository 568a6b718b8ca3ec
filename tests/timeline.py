"""In-process sessions over a price path known in advance: no HTTP server, so a property test can run
hundreds of histories. ``PathSource`` is a PriceSource whose every candle, quote and funding rate is
a function of time, so the same moment always has the same price, whichever command asks."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from portfolio_cli.config import Settings, load_settings
from portfolio_cli.engine.market import MarketRules
from portfolio_cli.engine.records import Candle
from portfolio_cli.errors import ExchangeUnavailable
from portfolio_cli.paths import resolve_paths
from portfolio_cli.prices import TIMEFRAMES, FundingRate, Quote, floor_time
from portfolio_cli.session import Session

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


class PathSource:
    """Minute candles from ``price(symbol, minute)``; coarser candles aggregate them. Records every
    request and whether a ledger transaction of a running command was open when it came."""

    name = "path"

    def __init__(self, price: Callable[[str, datetime], Decimal], clock: Callable[[], datetime]):
        self.price = price
        self.clock = clock
        self.requests: list[tuple[str, bool]] = []
        self.sessions: list[Session] = []  # the commands running, to see their ledger's transaction
        self.failing: set[str] = set()  # timeframes whose candles cannot be had

    def _log(self, what: str) -> None:
        writing = any(s._ledger is not None and s._ledger.conn.in_transaction for s in self.sessions)
        self.requests.append((what, writing))

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        self._log("quotes")
        now = self.clock()
        return {s: Quote(s, self.price(s, floor_time(now, "1m")), now) for s in symbols}

    def rules(self, symbol: str) -> MarketRules | None:
        self._log("rules")
        return None

    def pairs(self) -> frozenset[str] | None:
        self._log("rules")
        return None

    def ticks(self) -> dict[str, Decimal]:
        return {}  # no request: nothing to log

    def price_at(self, symbol: str, at: datetime) -> Quote:
        self._log("price_at")
        minute = floor_time(at, "1m")
        return Quote(symbol, self.price(symbol, minute), minute)

    def candle(self, symbol: str, timeframe: str, open_time: datetime) -> Candle:
        return _candle(self.price, symbol, timeframe, open_time)

    def candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        self._log("candles")
        if timeframe in self.failing:
            raise ExchangeUnavailable(f"no {timeframe} candles in this test")
        step = TIMEFRAMES[timeframe]
        end = min(until, floor_time(self.clock(), timeframe))
        out, t = [], floor_time(since, timeframe)
        while t < end:
            out.append(self.candle(symbol, timeframe, t))
            t += step
        return out

    def funding_rates(self, symbol: str, since: datetime, until: datetime) -> dict[datetime, FundingRate]:
        self._log("funding_rates")
        raise ExchangeUnavailable("no funding rates in this test: the configured rate applies")


@functools.lru_cache(maxsize=200_000)
def _candle(price: Callable[[str, datetime], Decimal], symbol: str, timeframe: str, open_time: datetime) -> Candle:
    """A candle of the path: its minutes' prices, the close being the next candle's open. A day is
    its hours' candles (the same open, high, low and close), so the minutes are priced once. Kept,
    since the path is a function of time: a property test's histories ask for the same days again."""
    span = TIMEFRAMES[timeframe]
    if span > HOUR and span % HOUR == timedelta(0):
        parts = [_candle(price, symbol, "1h", open_time + n * HOUR) for n in range(span // HOUR)]
        return Candle(
            symbol, timeframe, open_time, parts[0].open, max(c.high for c in parts), min(c.low for c in parts),
            parts[-1].close,
        )  # fmt: skip
    prices = [price(symbol, open_time + n * MINUTE) for n in range(span // MINUTE + 1)]
    return Candle(symbol, timeframe, open_time, prices[0], max(prices), min(prices), prices[-1])


@functools.lru_cache(maxsize=8)
def _settings(environment: tuple[tuple[str, str], ...]) -> Settings:
    """Settings read once per environment: a property test runs thousands of commands."""
    return load_settings(None)


def session_for(
    ledger: Path, source: PathSource, clock: Callable[[], datetime], command: str, warnings: list[str] | None = None
) -> Session:
    settings = _settings(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("PORTFOLIO_"))))
    paths = resolve_paths(ledger, None, settings.ledger)
    warn = warnings.append if warnings is not None else (lambda message: None)
    return Session(settings, paths, command, clock=clock, source=source, warn=warn, creates_ledger=True)


def run(ledger: Path, source: PathSource, clock: Callable[[], datetime], command: str, use_case, *args, **kwargs):
    """One command, as the CLI runs it: a session, the use case, then the fetched quotes kept.
    ``warnings=[...]`` collects what the command warned about."""
    session = session_for(ledger, source, clock, command, kwargs.pop("warnings", None))
    source.sessions.append(session)
    try:
        result = use_case(session, *args, **kwargs)
        session.keep_fetched_quotes()
        return result
    finally:
        source.sessions.remove(session)
        session.close()
