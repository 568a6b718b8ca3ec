"""Marks for a command: ``--price`` overrides, then one batched live request, then the last known price:
the ledger's cached quote or the symbol's latest fill, whichever is newer (a fill within a minute of
the quote was made from it, and the quote stands), labelled ``cache`` or ``last fill`` with its time,
so a table shows its age.

Every live quote is written to the cache. When the exchange cannot be reached the last known price is
used with a "stale since …" warning; a symbol with no price anywhere is an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from portfolio_cli.engine.records import Candle
from portfolio_cli.engine.rules import MarketRules
from portfolio_cli.engine.symbols import conversion_pair, symbols_to_price
from portfolio_cli.engine.valuation import Mark
from portfolio_cli.errors import ExchangeUnavailable, PriceUnavailable
from portfolio_cli.guard import refuse_network
from portfolio_cli.money import ONE, q8
from portfolio_cli.prices import TIMEFRAMES, FundingRate, PriceSource, Quote, floor_time


@dataclass(frozen=True)
class CandleSeries:
    symbol: str
    timeframe: str
    candles: tuple[Candle, ...]
    gaps: tuple[datetime, ...]  # open times with no candle, cached or fetched
    failure: str | None = None  # why the exchange could not fill the gaps


class QuoteCache(Protocol):
    def buffer_quotes(self, quotes: list[tuple[str, Decimal, datetime, str]], fetched_at: datetime) -> None: ...

    def cached_quotes(self, symbols: list[str]) -> dict[str, tuple[Decimal, datetime]]: ...

    def latest_fills(
        self, symbols: list[str], until: datetime | None = None
    ) -> dict[str, tuple[Decimal, Decimal, datetime]]: ...

    def buffer_candles(self, candles: list[Candle]) -> None: ...

    def cached_candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]: ...


LAST_FILL = "last fill"
# A fill this much newer than the cached quote is the better price to know; within it the fill was
# most likely made from that very quote (with slippage), and the market's price is the quote.
FILL_NEWER = timedelta(minutes=1)


class PriceBook:
    def __init__(
        self,
        source: PriceSource,
        cache: QuoteCache,
        overrides: Mapping[str, Decimal],
        clock: Callable[[], datetime],
        warn: Callable[[str], None],
        offline: bool = False,
    ):
        self.source = source
        self._cache = cache
        self._overrides = dict(overrides)
        self._clock = clock
        self._warn = warn
        self.offline = offline
        self._marks: dict[str, Mark] = {}

    def _exchange(self) -> PriceSource:
        """The source, for a request: refused while the ledger's write transaction is open."""
        refuse_network(self.source.name)
        return self.source

    def override(self, symbol: str, price: Decimal) -> None:
        self._overrides[symbol] = price
        self._marks.pop(symbol, None)

    def marks(self, symbols: set[str] | list[str], live: bool = True) -> dict[str, Mark]:
        """A mark in USDT for every symbol. ``live=False`` uses overrides and the cache only
        (for use while the ledger's write lock is held)."""
        marks, missing, reason = self.marks_found(symbols, live)
        if missing:
            raise PriceUnavailable(f"no price for {', '.join(missing)}{reason}; pass --price SYMBOL=VALUE")
        return marks

    def marks_found(self, symbols: set[str] | list[str], live: bool = True) -> tuple[dict[str, Mark], list[str], str]:
        """The marks that can be had, the symbols (or conversion pairs) with no price anywhere, and why."""
        wanted = symbols_to_price(symbols)
        quotes: dict[str, tuple[Quote, str, bool]] = {}
        now = self._clock()
        known = {s: m for s, m in self._marks.items() if s in wanted and m.source == LAST_FILL}
        for symbol in wanted:
            if symbol in known:
                continue
            if symbol in self._marks:
                mark = self._marks[symbol]
                quotes[symbol] = (Quote(symbol, mark.price, mark.at, mark.change_24h_pct), mark.source, mark.stale)
            elif symbol in self._overrides:
                quotes[symbol] = (Quote(symbol, self._overrides[symbol], now), "override", False)
        missing = [s for s in wanted if s not in quotes and s not in known]
        failure: ExchangeUnavailable | None = None
        if missing and live and not self.offline:
            try:
                fetched = self._exchange().quotes(missing)
            except ExchangeUnavailable as exc:
                failure = exc
            else:
                self._cache.buffer_quotes([(q.symbol, q.price, q.at, self.source.name) for q in fetched.values()], now)
                quotes.update({s: (q, self.source.name, False) for s, q in fetched.items()})
        missing = [s for s in wanted if s not in quotes and s not in known]
        if missing:
            cached = self._cache.cached_quotes(missing)
            quotes.update({s: (Quote(s, p, at), "cache", failure is not None) for s, (p, at) in cached.items()})
            if failure is not None and cached:
                oldest = min(at for _, at in cached.values())
                self._warn(
                    f"{failure}; using cached prices, stale since {oldest:%Y-%m-%d %H:%M} UTC "
                    f"({', '.join(sorted(cached))})"
                )
        priced = [s for s in wanted if s in quotes and (conversion_pair(s) or s) in quotes]
        marks = {s: _to_mark(s, quotes) for s in priced} | known
        fills = self._last_fills([s for s in symbols if s not in marks or marks[s].source == "cache"], quotes, failure)
        marks.update(fills)
        missing = [s for s in wanted if s not in quotes and s not in marks]
        reason = f" ({failure})" if failure else " (offline, nothing cached)" if self.offline else ""
        self._marks.update(marks)  # conversion pairs too: a later rate lookup needs no request
        return {s: marks[s] for s in symbols if s in marks}, missing, reason

    def _last_fills(
        self, symbols: list[str], quotes: Mapping[str, tuple[Quote, str, bool]], failure: Exception | None
    ) -> dict[str, Mark]:
        """Marks at the symbols' latest fills where no live quote was had and the fill is more than
        ``FILL_NEWER`` newer than the cached quote (or there is none): the last price the ledger knows,
        labelled ``last fill``."""
        wanted = [s for s in symbols if s not in quotes or quotes[s][1] == "cache"]
        marks = {}
        for symbol, (price, price_usdt, at) in self._cache.latest_fills(wanted).items():
            quote = quotes.get(symbol)
            if quote is not None and at <= quote[0].at + FILL_NEWER and (conversion_pair(symbol) or symbol) in quotes:
                continue
            marks[symbol] = Mark(symbol, price, price_usdt, at, LAST_FILL, failure is not None)
        if failure is not None and marks:
            oldest = min(m.at for m in marks.values())
            self._warn(
                f"{failure}; using the last fill prices, since {oldest:%Y-%m-%d %H:%M} UTC ({', '.join(sorted(marks))})"
            )
        return marks

    def price_at(self, symbol: str, at: datetime) -> Quote:
        """The price of ``symbol`` at a past moment: an override, else Binance's 1-minute candle."""
        if symbol in self._overrides:
            return Quote(symbol, self._overrides[symbol], at)
        if self.offline:
            raise PriceUnavailable(f"no price for {symbol} at {at:%Y-%m-%d %H:%M} UTC offline; pass --price")
        try:
            return self._exchange().price_at(symbol, at)
        except ExchangeUnavailable as exc:
            raise PriceUnavailable(f"no price for {symbol} at {at:%Y-%m-%d %H:%M} UTC: {exc}") from None

    def usdt_rate_at(self, symbol: str, at: datetime | None) -> Decimal:
        """USDT per unit of ``symbol``'s quote currency, now (``at`` None) or at a past moment."""
        pair = conversion_pair(symbol)
        if pair is None:
            return ONE
        if at is None:
            return self.marks([pair])[pair].price
        return self.price_at(pair, at).price

    def ticks(self) -> dict[str, Decimal]:
        """The price tick of each market known without a request: prices are shown to it."""
        return self.source.ticks()

    def rules(self, symbol: str) -> MarketRules | None:
        return self._exchange().rules(symbol)

    def marks_at(self, symbols: set[str] | list[str], moment: datetime, fills: bool = False) -> dict[str, Mark]:
        """Marks at a past ``moment``: an override, else the open of a candle, from the cache or the
        exchange. At midnight that is the day's candle (the price a backfilled snapshot uses); otherwise
        the finest candle holding ``moment``: 1 minute, then 1 hour, then 1 day. The mark's time is the
        candle's open, so a coarse price shows how old it is. With ``fills``, a symbol no candle prices
        is marked at its latest fill at or before ``moment`` (labelled ``last fill``)."""
        if moment >= floor_time(self._clock(), "1m"):
            return self.marks(symbols)  # no complete candle holds the current minute yet
        wanted = symbols_to_price(symbols)
        quotes: dict[str, tuple[Quote, str, bool]] = {}
        fetch = not self.offline
        for symbol in wanted:
            if symbol in self._overrides:
                quotes[symbol] = (Quote(symbol, self._overrides[symbol], moment), "override", False)
                continue
            candle, fetch = self._candle_at(symbol, moment, fetch)
            if candle is not None:
                quotes[symbol] = (Quote(symbol, candle.open, candle.open_time), f"candle {candle.timeframe}", False)
                if moment - candle.open_time >= TIMEFRAMES["1h"]:
                    self._warn(
                        f"{symbol} at {moment:%Y-%m-%d %H:%M} UTC is priced at the {candle.timeframe} candle's "
                        f"open of {candle.open_time:%Y-%m-%d %H:%M} UTC (no finer candle cached)"
                    )
        missing = [s for s in wanted if s not in quotes]
        known: dict[str, Mark] = {}
        if missing and fills:
            for symbol, (price, price_usdt, at) in self._cache.latest_fills(missing, until=moment).items():
                known[symbol] = Mark(symbol, price, price_usdt, at, LAST_FILL)
            missing = [
                s for s in symbols if s not in known and (s not in quotes or (conversion_pair(s) or s) not in quotes)
            ]
        if missing:
            why = " (offline and no candle cached)" if self.offline else ""
            raise PriceUnavailable(
                f"no price for {', '.join(missing)} at {moment:%Y-%m-%d %H:%M} UTC{why}; pass --price SYMBOL=VALUE"
            )
        return {s: known[s] if s in known else _to_mark(s, quotes) for s in symbols}

    def _candle_at(self, symbol: str, moment: datetime, fetch: bool) -> tuple[Candle | None, bool]:
        """The candle to price ``symbol`` at ``moment`` by, and whether the exchange may still be asked
        (after one failure it is not: a failing exchange must not cost a retry budget per timeframe)."""
        aligned = [tf for tf in ("1d", "1h", "1m") if floor_time(moment, tf) == moment][:1]
        for timeframe in dict.fromkeys([*aligned, "1m", "1h", "1d"]):
            start = floor_time(moment, timeframe)
            series = self.candles(symbol, timeframe, start, start + TIMEFRAMES[timeframe], fetch=fetch)
            fetch = fetch and series.failure is None
            if series.candles:
                return series.candles[0], fetch
        return None, fetch

    def candles(
        self, symbol: str, timeframe: str, since: datetime, until: datetime, fetch: bool = True
    ) -> CandleSeries:
        """Complete candles opening in ``[since, until)``: the ledger's cache first, the exchange for
        the rest (then cached). Offline or when the exchange fails, what is cached, with the gap named."""
        step = TIMEFRAMES[timeframe]
        start = floor_time(since, timeframe)
        end = min(until, floor_time(self._clock(), timeframe))  # the current candle is not complete yet
        have = {c.open_time: c for c in self._cache.cached_candles(symbol, timeframe, start, end)}
        wanted = []
        moment = start
        while moment < end:
            wanted.append(moment)
            moment += step
        missing = [t for t in wanted if t not in have]
        failure = None
        if missing and fetch and not self.offline:
            try:
                fetched = self._exchange().candles(symbol, timeframe, missing[0], end)
            except ExchangeUnavailable as exc:
                failure = str(exc)
            else:
                new = [c for c in fetched if c.open_time not in have]
                self._cache.buffer_candles(new)
                have.update({c.open_time: c for c in new})
        candles = [have[t] for t in wanted if t in have]
        gaps = [t for t in wanted if t not in have]
        return CandleSeries(symbol, timeframe, tuple(candles), tuple(gaps), failure)

    def funding_rates(self, symbol: str, since: datetime, until: datetime) -> dict[datetime, FundingRate]:
        """Binance's funding rates, or {} offline or when they cannot be fetched (the caller falls back)."""
        if self.offline:
            return {}
        try:
            return self._exchange().funding_rates(symbol, since, until)
        except ExchangeUnavailable as exc:
            self._warn(f"funding rates for {symbol} unavailable ({exc}); using the configured rate")
            return {}


def candle_marks(symbols: set[str] | list[str], opens: Mapping[str, Candle]) -> dict[str, Mark]:
    """Marks at the open of ``opens``: a candle for every symbol and the conversion pair it needs."""
    quotes = {s: (Quote(s, c.open, c.open_time), f"candle {c.timeframe}", False) for s, c in opens.items()}
    return {s: _to_mark(s, quotes) for s in symbols}


def candle_close_marks(symbols: set[str] | list[str], candles: Mapping[str, Candle]) -> dict[str, Mark]:
    """Marks at the close of ``candles``, timed at the moment each candle ends (a daily candle's
    close is the price at the end of its day): a candle for every symbol and its conversion pair."""
    quotes = {
        s: (Quote(s, c.close, c.open_time + TIMEFRAMES[c.timeframe]), f"candle {c.timeframe} close", False)
        for s, c in candles.items()
    }
    return {s: _to_mark(s, quotes) for s in symbols}


def _to_mark(symbol: str, quotes: Mapping[str, tuple[Quote, str, bool]]) -> Mark:
    quote, source, stale = quotes[symbol]
    pair = conversion_pair(symbol)
    rate = quotes[pair][0].price if pair else ONE
    return Mark(symbol, quote.price, q8(quote.price * rate), quote.at, source, stale, quote.change_24h_pct)
