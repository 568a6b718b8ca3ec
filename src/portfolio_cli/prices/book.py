"""Marks for a command: ``--price`` overrides, then one batched live request, then the last known price:
the ledger's cached quote or the symbol's latest fill, whichever is newer (a fill within a minute of
the quote was made from it, and the quote stands), labelled ``cache`` or ``last fill`` with its time,
so a table shows its age.

Every live quote is written to the cache. When the exchange cannot be reached the last known price is
used with a "stale since …" warning; a symbol with no price anywhere is an error naming it.

A perpetual (``BTC/USDT:USDT``, what a margin position on ``BTC/USDT`` is valued at) is priced at
Binance's mark price, all of them in one request; when no mark can be had, live or cached, it falls
back to its pair's last price, saying so. A ``--price`` override of ``BTC/USDT`` prices its perpetual too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from portfolio_cli.engine.market import MarketRules
from portfolio_cli.engine.records import Candle
from portfolio_cli.engine.symbols import conversion_pair, is_perpetual, spot_of, symbols_to_price
from portfolio_cli.engine.valuation import Mark
from portfolio_cli.errors import ExchangeUnavailable, NotFound, PriceUnavailable
from portfolio_cli.guard import refuse_network
from portfolio_cli.money import ONE, q8
from portfolio_cli.prices import TIMEFRAMES, FundingRate, PriceSource, Quote, floor_time


@dataclass(frozen=True)
class CandleSeries:
    """A symbol's candles over a window, with the open times that have none."""

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
        self.unlisted: set[str] = set()  # asked for live, and Binance does not list them
        self._live: set[str] = set()  # priced by a live request in this command

    def overridden(self, symbol: str) -> bool:
        """Whether ``--price`` gave this pair's price (a fill then needs no order book)."""
        return spot_of(symbol) in self._overrides

    def _exchange(self) -> PriceSource:
        """The source, for a request: refused while the ledger's write transaction is open."""
        refuse_network(self.source.name)
        return self.source

    def override(self, symbol: str, price: Decimal) -> None:
        """Price ``symbol`` (and its perpetual) at ``price`` from now on in this command."""
        self._overrides[symbol] = price
        for key in [k for k in self._marks if spot_of(k) == symbol]:
            del self._marks[key]

    def market_mark(self, key: str) -> Mark | None:
        """The market's own price of ``key`` (a pair's last price, a perpetual's mark), whatever
        ``--price`` says of it; None when none can be had (offline with nothing cached, say)."""
        pair = spot_of(key)
        saved = self._overrides.pop(pair, None)
        try:
            marks, _, _ = self.marks_found([key])
        finally:
            if saved is not None:
                self._overrides[pair] = saved
                for known in [k for k in self._marks if spot_of(k) == pair]:
                    del self._marks[known]
        return marks.get(key)

    def quote_age(self, key: str, mark: Mark) -> timedelta | None:
        """How old ``mark`` is as a price to fill at: None when it is fresh (fetched live by this
        command, or given by ``--price``), else the time since its quote."""
        if key in self._live or mark.source == "override":
            return None
        return self._clock() - mark.at

    def marks(self, symbols: set[str] | list[str], live: bool = True) -> dict[str, Mark]:
        """A mark in USDT for every symbol. ``live=False`` uses overrides and the cache only
        (for use while the ledger's write lock is held)."""
        marks, missing, reason = self.marks_found(symbols, live)
        if missing:
            raise PriceUnavailable(f"no price for {', '.join(missing)}{reason}; pass --price SYMBOL=VALUE")
        return marks

    def marks_found(self, symbols: set[str] | list[str], live: bool = True) -> tuple[dict[str, Mark], list[str], str]:
        """The marks that can be had, the symbols (or conversion pairs) with no price anywhere, and why.
        A perpetual is marked at Binance's mark price; without one, at its pair's last price, said."""
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
            elif spot_of(symbol) in self._overrides:
                quotes[symbol] = (Quote(symbol, self._overrides[spot_of(symbol)], now), "override", False)
        perpetuals = [s for s in wanted if is_perpetual(s) and s not in quotes]
        fallback: list[str] = []
        if perpetuals:
            quotes.update(self._mark_prices(perpetuals, live, now))
            fallback = [s for s in perpetuals if s not in quotes]
            wanted = sorted(set(wanted) - set(fallback) | {spot_of(s) for s in fallback})
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
                self._live.update(fetched)
                self.unlisted.update(s for s in missing if s not in fetched)
        missing = [s for s in wanted if s not in quotes and s not in known]
        if missing:
            cached = self._cache.cached_quotes(missing)
            stale_ones = {s for s in cached if failure is not None or s in self.unlisted}
            quotes.update({s: (Quote(s, p, at), "cache", s in stale_ones) for s, (p, at) in cached.items()})
            for symbol in sorted(self.unlisted & set(cached)):
                self._warn(
                    f"{symbol} is not listed on Binance: using its cached price from {cached[symbol][1]:%Y-%m-%d %H:%M} UTC"
                )
            if failure is not None and cached:
                oldest = min(at for _, at in cached.values())
                self._warn(
                    f"{failure}; using cached prices, stale since {oldest:%Y-%m-%d %H:%M} UTC "
                    f"({', '.join(sorted(cached))})"
                )
        for perpetual in fallback:
            if spot_of(perpetual) in self._live:
                self._live.add(perpetual)
            if spot_of(perpetual) in quotes:
                quote, source, stale = quotes[spot_of(perpetual)]
                quotes[perpetual] = (Quote(perpetual, quote.price, quote.at), f"{source} (last price)", stale)
                if hasattr(self.source, "mark_prices"):  # a quotes file's price is its own mark: no warning
                    self._warn(f"no mark price for {perpetual}: valued at {spot_of(perpetual)}'s last price")
        wanted = sorted(set(wanted) | set(perpetuals))
        priced = [s for s in wanted if s in quotes and (conversion_pair(s) or s) in quotes]
        marks = {s: _to_mark(s, quotes) for s in priced} | known
        # A perpetual with neither a mark nor a quote falls back on its pair's last fill, priced here.
        asked = set(symbols) | {spot_of(p) for p in fallback}
        fills = self._last_fills([s for s in asked if s not in marks or marks[s].source == "cache"], quotes, failure)
        marks.update(fills)
        for perpetual in fallback:  # no mark and no quote: the pair's last fill
            if perpetual not in marks and spot_of(perpetual) in marks:
                spot = marks[spot_of(perpetual)]
                marks[perpetual] = Mark(perpetual, spot.price, spot.price_usdt, spot.at, spot.source, spot.stale)
        missing = [s for s in wanted if s not in quotes and s not in marks]
        reason = (
            f" ({failure})"
            if failure
            else " (offline, nothing cached)"
            if self.offline
            else " (not listed on Binance, nothing cached)"
            if set(missing) & self.unlisted
            else ""
        )
        self._marks.update(marks)  # conversion pairs too: a later rate lookup needs no request
        return {s: marks[s] for s in symbols if s in marks}, missing, reason

    def _mark_prices(self, perpetuals: list[str], live: bool, now: datetime) -> dict[str, tuple[Quote, str, bool]]:
        """Mark prices: one live request for all of them, else the cache (stale, with a warning)."""
        quotes: dict[str, tuple[Quote, str, bool]] = {}
        failure: Exception | None = None
        if live and not self.offline and hasattr(self.source, "mark_prices"):
            try:
                fetched = self._exchange().mark_prices(perpetuals)  # type: ignore[attr-defined]
            except ExchangeUnavailable as exc:
                failure = exc
            else:
                self._cache.buffer_quotes([(q.symbol, q.price, q.at, "binance mark") for q in fetched.values()], now)
                quotes.update({s: (q, "mark", False) for s, q in fetched.items()})
                self._live.update(fetched)
        missing = [s for s in perpetuals if s not in quotes]
        if missing and (failure is not None or self.offline or not live):
            cached = self._cache.cached_quotes(missing)
            quotes.update({s: (Quote(s, p, at), "cached mark", failure is not None) for s, (p, at) in cached.items()})
            if failure is not None and cached:
                oldest = min(at for _, at in cached.values())
                self._warn(
                    f"mark prices: {failure}; using cached marks, stale since {oldest:%Y-%m-%d %H:%M} UTC "
                    f"({', '.join(sorted(cached))})"
                )
        return quotes

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
        """The pair's trading rules; None when they cannot be known (offline or Binance unreachable, with
        no markets list cached): the caller says what goes unchecked. NotFound for an unknown pair."""
        try:
            return self._exchange().rules(symbol)
        except ExchangeUnavailable as exc:
            self._warn(f"the markets list is unavailable ({exc})")
            return None

    def pairs(self) -> frozenset[str] | None:
        """Every pair the markets list holds, loaded now: a command that checks many symbols inside its
        transaction (an import) asks once, before it. None when it cannot be known, as for ``rules``."""
        try:
            return self._exchange().pairs()
        except ExchangeUnavailable as exc:
            self._warn(f"the markets list is unavailable ({exc})")
            return None

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
        fetch_candles = getattr(self.source, "mark_candles", None) if is_perpetual(symbol) else self.source.candles
        fetch = fetch and fetch_candles is not None  # a perpetual's candles are its mark-price klines
        have = {c.open_time: c for c in self._cache.cached_candles(symbol, timeframe, start, end)}
        wanted = []
        moment = start
        while moment < end:
            wanted.append(moment)
            moment += step
        missing = [t for t in wanted if t not in have]
        failure = None
        if missing and fetch and fetch_candles is not None and not self.offline:
            try:
                refuse_network(self.source.name)
                fetched = fetch_candles(symbol, timeframe, missing[0], end)
            except ExchangeUnavailable as exc:
                failure = str(exc)
            else:
                new = [c for c in fetched if c.open_time not in have]
                self._cache.buffer_candles(new)
                have.update({c.open_time: c for c in new})
        candles = [have[t] for t in wanted if t in have]
        gaps = [t for t in wanted if t not in have]
        return CandleSeries(symbol, timeframe, tuple(candles), tuple(gaps), failure)

    def funding_rates(self, symbol: str, since: datetime, until: datetime) -> dict[datetime, FundingRate] | None:
        """Binance's funding settlements, or None offline or when they cannot be fetched (the caller
        falls back to the configured rate every 8 hours). NotFound: the pair has no perpetual."""
        if self.offline:
            return None
        try:
            return self._exchange().funding_rates(symbol, since, until)
        except ExchangeUnavailable as exc:
            self._warn(f"funding rates for {symbol} unavailable ({exc}); using the configured rate")
            return None

    def futures_rules(self, symbol: str) -> MarketRules | None:
        """The perpetual's filters; None when unknown (offline with nothing cached, or a source with
        no futures side). NotFound when Binance has no perpetual for the pair."""
        fetch = getattr(self.source, "futures_rules", None)
        if fetch is None:
            return None
        try:
            return fetch(symbol)
        except ExchangeUnavailable as exc:
            self._warn(f"the perpetual's trading rules for {symbol} are unavailable ({exc}): not checked")
            return None

    def order_book(self, symbol: str):
        """One depth request, or None (offline, a source without books, or Binance failing: why is warned
        by the caller, which falls back to the last price)."""
        fetch = getattr(self.source, "order_book", None)
        if fetch is None or self.offline:
            return None, "no order book offline" if self.offline else "no order book from this price source"
        try:
            return fetch(symbol), None
        except (ExchangeUnavailable, NotFound) as exc:
            return None, str(exc)

    def perpetual_last(self, symbol: str) -> Quote | None:
        fetch = getattr(self.source, "last_price", None)
        if fetch is None or self.offline:
            return None
        try:
            return fetch(symbol)
        except (ExchangeUnavailable, NotFound):
            return None


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
