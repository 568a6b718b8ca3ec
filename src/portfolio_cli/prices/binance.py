"""Binance through ccxt: the only module that imports ccxt, and only when a price is needed.

One ``GET /api/v3/ticker/24hr?symbols=[...]`` per command; ``exchangeInfo`` at most once per
``markets_ttl_hours`` (cached on disk). The USDⓈ-M side, for margin positions: the perpetuals'
filters from ``/fapi/v1/exchangeInfo`` (cached on disk like the spot markets, in a file of their
own, so a futures outage never stops spot pricing), every mark price in one
``/fapi/v1/premiumIndex``, mark-price klines, funding history and order books. Along freqtrade's lines, three separate steps:

- ``translate`` turns every ccxt error into one of a few typed errors, by the HTTP status when
  there was an answer: temporary (429, any 5xx whatever its body, a timeout, a dropped connection),
  banned (418), not found (an unknown symbol), a bad response (an answer that is not the one asked
  for) or unavailable (any other refusal, e.g. a 404 or 403, named by its status);
- ``retry`` asks again after temporary failures only, with exponential backoff or the server's
  ``Retry-After``, inside one budget per command — ``max_attempts`` failed requests and
  ``retry_budget_seconds`` in all, however many calls the command makes;
- the answers are parsed by this module's own functions, whose errors alone mean a bad response.

A 418 means the IP is banned: nothing is sent again until the ban ends (remembered on disk).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from portfolio_cli.config import Prices
from portfolio_cli.engine.market import MarketRules, PriceBand
from portfolio_cli.engine.records import Candle
from portfolio_cli.engine.symbols import market_id, perpetual_of, spot_of
from portfolio_cli.errors import (
    ExchangeBadResponse,
    ExchangeBanned,
    ExchangeTemporary,
    ExchangeUnavailable,
    NotFound,
    PortfolioError,
)
from portfolio_cli.money import D
from portfolio_cli.prices import TIMEFRAMES, FundingRate, OrderBook, Quote, floor_time

T = TypeVar("T")
DEFAULT_BAN = timedelta(minutes=5)
# Binance always lists it: a markets list without it is not a real answer.
CANARY = "BTC/USDT"
FUTURES_CANARY = "BTCUSDT"
DEPTH_LIMIT = 100  # levels per side in one depth request
PAGE = 1000  # candles per request, Binance's maximum
MAX_CANDLE_PAGES = 100  # a misbehaving server cannot keep a command paging forever
MAX_BACKOFF_SECONDS = 8.0


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to the latest request, as ccxt received it (None when none came)."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: str


def translate(exc: Exception, answer: Answer | None, now: datetime, timeout_seconds: float) -> PortfolioError:
    """The typed error for a ccxt error; an HTTP answer's status decides over ccxt's class, which
    for Binance depends on the body (a 500 with Binance's JSON body is not ccxt's "not available")."""
    import ccxt

    if isinstance(exc, ccxt.BadSymbol):
        return NotFound(f"unknown symbol on Binance: {_first_line(exc)}")
    if answer is None:  # no answer at all
        if isinstance(exc, ccxt.RequestTimeout):
            return ExchangeTemporary(f"no answer within {timeout_seconds:g} s")
        if isinstance(exc, ccxt.NetworkError):
            return ExchangeTemporary("connection reset" if _caused_by(exc, ConnectionResetError) else "cannot connect")
        return ExchangeUnavailable(f"Binance request failed: {_first_line(exc)}")
    status, retry_after = answer.status, _retry_after(answer.headers)
    if status == 418:
        until = now + (timedelta(seconds=retry_after) if retry_after else DEFAULT_BAN)
        return ExchangeBanned(f"Binance has banned this IP (HTTP 418) until {until:%Y-%m-%d %H:%M:%S} UTC", until)
    if status == 429:
        return ExchangeTemporary("rate limited (HTTP 429)", retry_after)
    if status == 504:
        return ExchangeTemporary("gateway timeout (HTTP 504)", retry_after)
    if status >= 500:
        return ExchangeTemporary(f"server error (HTTP {status} {answer.reason})".replace(" )", ")"), retry_after)
    if status >= 400:
        said = _binance_message(answer.body)
        return ExchangeUnavailable(
            f"Binance refused the request: HTTP {status} {answer.reason}".rstrip() + (f": {said}" if said else "")
        )
    return ExchangeBadResponse(f"Binance returned an unusable response: {_first_line(exc)}")


@dataclass
class RetryBudget:
    """What one command may spend on temporary failures, across all its requests: ``max_attempts``
    failed requests and ``seconds`` of failed requests and backoff. Once spent, the command sends
    nothing more (its later requests fail at once with the reason)."""

    max_attempts: int
    seconds: float
    failures: int = 0
    spent: float = 0.0
    gave_up: str | None = None  # why, once spent

    def backoff(self) -> float:
        return min(0.5 * 2 ** (self.failures - 1), MAX_BACKOFF_SECONDS)


def retry(request: Callable[[], T], budget: RetryBudget, sleep: Callable[[float], None]) -> T:
    """``request()``, asked again after an ``ExchangeTemporary`` while ``budget`` lasts; any other
    error is raised at once. The waits go through ``sleep`` (the tests record them instead)."""
    while True:
        if budget.gave_up is not None:
            raise ExchangeUnavailable(budget.gave_up)
        started = time.monotonic()
        try:
            return request()
        except ExchangeTemporary as exc:
            budget.failures += 1
            budget.spent += time.monotonic() - started
            wait = exc.retry_after if exc.retry_after is not None else budget.backoff()
            if budget.failures >= budget.max_attempts or budget.spent + wait > budget.seconds:
                budget.gave_up = f"Binance unavailable: {exc.reason} after {budget.failures} attempt(s)"
                raise ExchangeUnavailable(budget.gave_up) from None
            budget.spent += wait
            sleep(wait)


class BinanceSource:
    name = "binance"

    def __init__(
        self,
        settings: Prices,
        cache_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        offline: bool = False,
        warn: Callable[[str], None] = lambda message: None,
    ):
        self._settings = settings
        self._warn = warn
        self._markets_file = cache_dir / "binance-markets.json"
        # Each market's price tick, written with the markets list: showing prices to the tick reads this
        # small file rather than the whole list (a few MB for Binance's spot markets).
        self._ticks_file = cache_dir / "binance-ticks.json"
        self._futures_file = cache_dir / "binance-futures.json"
        self._futures: dict[str, Any] | None = None
        self._ban_file = cache_dir / "binance-ban.json"
        self._clock = clock
        self._sleep = sleep
        self._offline = offline
        self._exchange: Any = None
        self._markets: dict[str, Any] | None = None
        # One budget for the whole command: this source lives as long as the command's session.
        self._budget = RetryBudget(settings.max_attempts, settings.retry_budget_seconds)

    # PriceSource

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        if self._offline:
            raise ExchangeUnavailable("offline")
        symbols = self.listed(symbols)  # a symbol Binance does not list is left out, not fatal
        if not symbols:
            return {}
        ids = {self._market_id(symbol): symbol for symbol in symbols}
        # Binance's own answer rather than ccxt's fetch_tickers, whose parsing of a garbled body
        # fails with AttributeError; the same request (ccxt sends this one for spot symbols).
        answer = self._request(lambda exchange: exchange.publicGetTicker24hr({"symbols": exchange.json(list(ids))}))
        return parse_tickers(answer, ids, self._clock())

    def listed(self, symbols: list[str]) -> list[str]:
        """The spot symbols Binance lists (all of them when the markets cannot be known)."""
        markets = self._load_markets()
        return [s for s in symbols if not markets or s in markets]

    def rules(self, symbol: str) -> MarketRules | None:
        markets = self._load_markets()
        if not markets:
            return None  # offline with no markets cached: the rules cannot be known
        self._require_known([symbol])
        market = markets[symbol]
        limits = market.get("limits") or {}
        return MarketRules(
            symbol=symbol,
            amount_step=_decimal((market.get("precision") or {}).get("amount")),
            min_qty=_decimal((limits.get("amount") or {}).get("min")),
            min_notional=_decimal((limits.get("cost") or {}).get("min")),
            active=market.get("active") is not False,
            max_market_qty=_decimal((limits.get("market") or {}).get("max")) or None,
            price_step=_decimal((market.get("precision") or {}).get("price")),
            price_band=price_band_of(market.get(BAND_FILTERS) or []),
        )

    def pairs(self) -> frozenset[str] | None:
        return frozenset(self._load_markets()) or None  # offline with no markets cached: cannot be known

    def ticks(self) -> dict[str, Decimal]:
        """From the markets this command loaded, else the cached list however old (ticks rarely
        change): never a request, so a command that prices nothing stays off the network."""
        if self._markets is None:
            cached = self._read_cache(self._ticks_file, ignore_age=True)
            if isinstance(cached, dict):
                found = {s: _decimal(tick) for s, tick in cached.items()}
                return {s: tick for s, tick in found.items() if tick}
        return _ticks_of(self._markets if self._markets is not None else self._read_markets_cache(ignore_age=True))

    # USDⓈ-M perpetuals

    def futures_rules(self, symbol: str) -> MarketRules | None:
        """The perpetual's filters (``BTC/USDT`` → ``BTCUSDT``): None offline with nothing cached;
        NotFound when Binance has no USDⓈ-M perpetual for the pair."""
        markets = self._load_futures()
        if not markets:
            return None
        market = markets.get(market_id(symbol))
        if market is None:
            raise NotFound(
                f"{spot_of(symbol)} has no USDⓈ-M perpetual on Binance ({market_id(symbol)} is not in the futures "
                "exchangeInfo): margin positions trade the perpetual"
            )
        return market_rules(perpetual_of(symbol), market)

    def mark_prices(self, symbols: list[str]) -> dict[str, Quote]:
        """Binance's mark price of every perpetual asked for, keyed ``BTC/USDT:USDT``, from one
        ``/fapi/v1/premiumIndex`` (it answers for every symbol at once). A symbol Binance has no
        perpetual for is left out."""
        if self._offline:
            raise ExchangeUnavailable("offline")
        rows = self._request(lambda exchange: exchange.fapiPublicGetPremiumIndex())
        if not isinstance(rows, list):
            raise ExchangeBadResponse("Binance returned an unusable mark-price response")
        wanted = {market_id(s): perpetual_of(s) for s in symbols}
        marks = {}
        for row in rows:
            symbol = wanted.get(str(row.get("symbol"))) if isinstance(row, dict) else None
            if symbol is None:
                continue
            try:
                price = D(str(row["markPrice"]))
                at = datetime.fromtimestamp(int(row["time"]) / 1000, UTC)
            except (TypeError, KeyError, ValueError, OverflowError, OSError):
                raise ExchangeBadResponse(f"Binance returned no usable mark price for {symbol}") from None
            if price <= 0:
                raise ExchangeBadResponse(f"Binance returned a non-positive mark price for {symbol}: {price}")
            marks[symbol] = Quote(symbol, price, at)
        return marks

    def mark_candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        """Mark-price klines (``/fapi/v1/markPriceKlines``) of the perpetual, keyed ``BTC/USDT:USDT``,
        pages of 1,000 from ``since``; only complete candles."""
        if self._offline:
            raise ExchangeUnavailable("offline")
        perpetual = perpetual_of(symbol)
        step = TIMEFRAMES[timeframe]
        end = min(until, floor_time(self._clock(), timeframe))
        cursor = floor_time(since, timeframe)
        result: list[Candle] = []
        for _ in range(MAX_CANDLE_PAGES):
            if cursor >= end:
                break
            params = {
                "symbol": market_id(symbol),
                "interval": timeframe,
                "startTime": int(cursor.timestamp() * 1000),
                "limit": PAGE,
            }
            rows = self._call("fapiPublicGetMarkPriceKlines", params)
            if not isinstance(rows, list):
                raise ExchangeBadResponse(f"Binance returned unusable mark-price klines for {perpetual}")
            page = [c for c in (_candle(perpetual, timeframe, row) for row in rows) if cursor <= c.open_time < end]
            if not page:
                break
            result.extend(page)
            cursor = page[-1].open_time + step
        return result

    def order_book(self, symbol: str) -> OrderBook:
        """One depth request: the spot book of ``BTC/USDT``, the perpetual's of ``BTC/USDT:USDT``."""
        if self._offline:
            raise ExchangeUnavailable("offline")
        params = {"symbol": market_id(symbol), "limit": DEPTH_LIMIT}
        if symbol == perpetual_of(symbol):
            body = self._request(lambda exchange: exchange.fapiPublicGetDepth(params))
        else:
            body = self._request(lambda exchange: exchange.publicGetDepth(params))
        try:
            bids = tuple((D(str(p)), D(str(q))) for p, q in body["bids"])
            asks = tuple((D(str(p)), D(str(q))) for p, q in body["asks"])
        except (TypeError, KeyError, ValueError):
            raise ExchangeBadResponse(f"Binance returned an unusable order book for {symbol}") from None
        return OrderBook(symbol, bids, asks, self._clock())

    def last_price(self, symbol: str) -> Quote:
        """The perpetual's last traded price (``/fapi/v1/ticker/price``): the fill a market order
        falls back to when the book cannot be had."""
        if self._offline:
            raise ExchangeUnavailable("offline")
        body = self._request(lambda exchange: exchange.fapiPublicGetTickerPrice({"symbol": market_id(symbol)}))
        try:
            price = D(str(body["price"]))
            at = datetime.fromtimestamp(int(body["time"]) / 1000, UTC)
        except (TypeError, KeyError, ValueError, OverflowError, OSError):
            raise ExchangeBadResponse(f"Binance returned no usable last price for {symbol}") from None
        return Quote(perpetual_of(symbol), price, at)

    def price_at(self, symbol: str, at: datetime) -> Quote:
        if self._offline:
            raise ExchangeUnavailable("offline")
        self._require_known([symbol])
        since = int(at.timestamp()) // 60 * 60 * 1000
        rows = self._klines(symbol, "1m", since, 1)
        candles = [_candle(symbol, "1m", row) for row in rows[:1]]
        if not candles or int(candles[0].open_time.timestamp() * 1000) != since:
            raise ExchangeUnavailable(f"Binance has no candle for {symbol} at {at:%Y-%m-%d %H:%M} UTC")
        return Quote(symbol, candles[0].open, candles[0].open_time)

    def candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        """Pages of klines (1,000 candles each) from ``since``; only complete candles."""
        if self._offline:
            raise ExchangeUnavailable("offline")
        self._require_known([symbol])
        step = TIMEFRAMES[timeframe]
        end = min(until, floor_time(self._clock(), timeframe))  # the current candle is not complete
        cursor = floor_time(since, timeframe)
        result: list[Candle] = []
        for _ in range(MAX_CANDLE_PAGES):
            if cursor >= end:
                break
            rows = self._klines(symbol, timeframe, int(cursor.timestamp() * 1000), PAGE)
            page = [c for c in (_candle(symbol, timeframe, row) for row in rows) if cursor <= c.open_time < end]
            if not page:
                break
            result.extend(page)
            cursor = page[-1].open_time + step
        return result

    def funding_rates(self, symbol: str, since: datetime, until: datetime) -> dict[datetime, FundingRate]:
        """Every funding settlement of the perpetual in ``[since, until]`` from Binance's funding
        history (``/fapi/v1/fundingRate``, pages of 1,000), by the hour it was paid: each symbol's
        own times, whatever its interval was then. NotFound: no perpetual ("Invalid symbol")."""
        if self._offline:
            raise ExchangeUnavailable("offline")
        start, end = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
        rates: dict[datetime, FundingRate] = {}
        for _ in range(MAX_CANDLE_PAGES):
            params = {"symbol": market_id(symbol), "startTime": start, "endTime": end, "limit": PAGE}
            rows = self._call("fapiPublicGetFundingRate", params)
            rates.update(parse_funding(rows, symbol))
            paid = [int(r["fundingTime"]) for r in rows]  # parse_funding checked every row
            if len(rows) < PAGE or not paid or max(paid) >= end:
                break
            start = max(paid) + 1
        return rates

    # internals

    def _require_known(self, symbols: list[str]) -> None:
        markets = self._load_markets()
        for symbol in symbols:
            if markets and symbol not in markets:
                raise NotFound(f"unknown symbol {symbol} on Binance")

    def _load_markets(self) -> dict[str, Any]:
        """Markets from the disk cache, or from exchangeInfo at most once per TTL. Offline, an
        expired cache still serves (lot steps rarely change); no cache at all gives {}."""
        if self._markets is None:
            cached = self._read_markets_cache(ignore_age=self._offline)
            if cached is None and not self._offline:
                try:
                    cached = self._slim(self._request(lambda exchange: exchange.load_markets()))
                except ExchangeUnavailable:  # an expired list beats none: lot steps rarely change
                    cached = self._read_markets_cache(ignore_age=True)
                    if cached is None:
                        raise
                    self._markets = cached
                    return cached
                if CANARY not in cached:  # an empty, partial or garbled answer: never cache it
                    self._client().markets = None
                    raise ExchangeBadResponse("Binance returned an unusable markets list")
                self._write_markets_cache(cached)
            self._markets = cached or {}
        return self._markets

    def _load_futures(self) -> dict[str, Any]:
        """The perpetuals' raw entries of ``/fapi/v1/exchangeInfo`` by market id, cached on disk
        like the spot markets (at most one request per ``markets_ttl_hours``)."""
        if self._futures is None:
            cached = self._read_cache(self._futures_file, ignore_age=self._offline)
            if cached is None and not self._offline:
                try:
                    body = self._request(lambda exchange: exchange.fapiPublicGetExchangeInfo())
                except ExchangeUnavailable:  # an expired list beats none
                    cached = self._read_cache(self._futures_file, ignore_age=True)
                    if cached is None:
                        raise
                    self._futures = cached
                    return cached
                symbols = body.get("symbols") if isinstance(body, dict) else None
                cached = {
                    m["symbol"]: m
                    for m in symbols or []
                    if isinstance(m, dict) and m.get("contractType") == "PERPETUAL" and m.get("quoteAsset") == "USDT"
                }
                if FUTURES_CANARY not in cached:  # an empty, partial or garbled answer: never cache it
                    raise ExchangeBadResponse("Binance returned an unusable futures exchangeInfo")
                self._write_markets_to(self._futures_file, cached)
            self._futures = cached or {}
        return self._futures

    def _client(self) -> Any:
        if self._exchange is None:
            self._exchange = self._make_client()
        if self._markets and not self._exchange.markets:
            self._exchange.set_markets(self._markets)
        return self._exchange

    def _make_client(self) -> Any:
        import ccxt

        class Binance(ccxt.binance):
            """ccxt's Binance, keeping the HTTP answer to each request for ``translate``."""

            answer: Answer | None = None

            def on_rest_response(self, code, reason, url, method, headers, body, *request):
                self.answer = Answer(code, reason or "", headers, body)
                return super().on_rest_response(code, reason, url, method, headers, body, *request)

        exchange = Binance(
            {
                "timeout": int(self._settings.timeout_seconds * 1000),
                # A command makes one or two requests; 429s are handled by retry, not by sleeping first.
                "enableRateLimit": False,
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "defaultType": "spot"},
            }
        )
        if self._settings.binance_url:
            base = self._settings.binance_url
            for key, url in list(exchange.urls["api"].items()):
                if isinstance(url, str):
                    exchange.urls["api"][key] = base + urlsplit(url).path
        return exchange

    def _read_markets_cache(self, ignore_age: bool) -> dict | None:
        return self._read_cache(self._markets_file, ignore_age)

    def _read_cache(self, path: Path, ignore_age: bool) -> dict | None:
        try:
            cached = json.loads(path.read_text())
            fetched = datetime.fromisoformat(cached["fetched_at"])
            if cached.get("url") != self._settings.binance_url:
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not ignore_age and self._clock() - fetched > timedelta(hours=self._settings.markets_ttl_hours):
            return None
        return cached["markets"]

    @staticmethod
    def _slim(markets: dict) -> dict:
        # ccxt keeps Binance's raw filters under "info"; the unified fields are all we read, and the
        # PERCENT_PRICE filters, which ccxt does not unify.
        return {
            s: {k: v for k, v in m.items() if k != "info"} | {BAND_FILTERS: _band_filters(m.get("info"))}
            for s, m in markets.items()
        }

    def _write_markets_cache(self, markets: dict) -> None:
        if self._write_markets_to(self._markets_file, markets):
            self._write_markets_to(self._ticks_file, {s: str(tick) for s, tick in _ticks_of(markets).items()})

    def _write_markets_to(self, path: Path, markets: dict) -> bool:
        payload = {"fetched_at": self._clock().isoformat(), "url": self._settings.binance_url, "markets": markets}
        return self._write_cache(path, payload)

    def _market_id(self, symbol: str) -> str:
        return str(self._load_markets()[symbol]["id"])

    def _klines(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[Any]:
        """Binance's candles as it sent them (exact decimal strings, not ccxt's floats); the request
        ccxt's fetch_ohlcv sends for a spot symbol."""
        params = {"symbol": self._market_id(symbol), "interval": timeframe, "startTime": since_ms, "limit": limit}
        rows = self._request(lambda exchange: exchange.publicGetKlines(params))
        if not isinstance(rows, list):
            raise ExchangeBadResponse(f"Binance returned an unusable candle response for {symbol}")
        return rows

    def _call(self, method: str, params: dict) -> Any:
        """One of ccxt's implicit endpoint methods (``fapiPublicGetFundingRate``...) through ``_request``."""
        return self._request(lambda exchange: getattr(exchange, method)(params))

    def _request(self, send: Callable[[Any], T]) -> T:
        """``send(exchange)``: one request, its ccxt errors translated, retried inside the command's budget."""
        import ccxt

        def once() -> T:
            self._refuse_while_banned()
            exchange = self._client()
            exchange.answer = None
            try:
                return send(exchange)
            except ccxt.BaseError as exc:
                error = translate(exc, exchange.answer, self._clock(), self._settings.timeout_seconds)
                if isinstance(error, ExchangeBanned):
                    self._remember_ban(error.until)
                raise error from None

        return retry(once, self._budget, self._sleep)

    def _refuse_while_banned(self) -> None:
        try:
            until = datetime.fromisoformat(json.loads(self._ban_file.read_text())["until"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if self._clock() < until:
            raise ExchangeUnavailable(
                f"Binance has banned this IP (HTTP 418) until {until:%Y-%m-%d %H:%M:%S} UTC; not asking before then"
            )

    def _remember_ban(self, until: datetime) -> None:
        self._write_cache(self._ban_file, {"until": until.isoformat()})

    def _write_cache(self, path: Path, payload: dict) -> bool:
        """A cache file through the one file writer (a unique temporary name, renamed into place, so
        concurrent cold starts never collide). A cache is best effort: failing to write one (a full
        disk, say) is a warning, never the command's failure."""
        from portfolio_cli.errors import PortfolioError
        from portfolio_cli.files import write_text

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, lambda handle: print(json.dumps(payload), end="", file=handle), force=True)
        except (OSError, PortfolioError) as exc:
            self._warn(f"could not cache {path.name}: {exc}")
            return False
        return True


BAND_FILTERS = "percent_price_filters"  # the raw PERCENT_PRICE filters, kept in the markets cache


def _band_filters(info: Any) -> list[dict[str, Any]]:
    filters = info.get("filters") if isinstance(info, dict) else None
    return [
        f
        for f in filters or []
        if isinstance(f, dict) and f.get("filterType") in ("PERCENT_PRICE", "PERCENT_PRICE_BY_SIDE")
    ]


def price_band_of(filters: list[dict[str, Any]]) -> PriceBand | None:
    """The price band from Binance's filters: PERCENT_PRICE_BY_SIDE (bid multipliers for buys, ask for
    sells) where the market has it, else PERCENT_PRICE; None when neither is given (or unreadable)."""
    by_type = {f.get("filterType"): f for f in filters if isinstance(f, dict)}
    side = by_type.get("PERCENT_PRICE_BY_SIDE")
    if side is not None:
        keys = ("bidMultiplierDown", "bidMultiplierUp", "askMultiplierDown", "askMultiplierUp")
        values = [v for v in (_decimal(side.get(k)) for k in keys) if v is not None and v > 0]
        if len(values) == len(keys):
            return PriceBand(values[0], values[1], values[2], values[3], source="PERCENT_PRICE_BY_SIDE")
    both = by_type.get("PERCENT_PRICE")
    if both is not None:
        down, up = _decimal(both.get("multiplierDown")), _decimal(both.get("multiplierUp"))
        if down is not None and up is not None and down > 0 and up > 0:
            return PriceBand(down, up, down, up, source="PERCENT_PRICE")
    return None


def market_rules(symbol: str, market: dict[str, Any]) -> MarketRules:
    """A perpetual's rules from its raw futures exchangeInfo entry (Binance's own decimal strings)."""
    filters = {f.get("filterType"): f for f in market.get("filters") or [] if isinstance(f, dict)}
    lot, market_lot = filters.get("LOT_SIZE") or {}, filters.get("MARKET_LOT_SIZE") or {}
    return MarketRules(
        symbol=symbol,
        amount_step=_decimal(lot.get("stepSize")),
        min_qty=_decimal(lot.get("minQty")),
        min_notional=_decimal((filters.get("MIN_NOTIONAL") or {}).get("notional")),
        active=market.get("status") == "TRADING",
        max_market_qty=_decimal(market_lot.get("maxQty")) or None,
        price_step=_decimal((filters.get("PRICE_FILTER") or {}).get("tickSize")),
        liquidation_fee=_decimal(market.get("liquidationFee")),
        price_band=price_band_of(list(filters.values())),
    )


def parse_tickers(answer: Any, ids: dict[str, str], now: datetime) -> dict[str, Quote]:
    """Quotes from Binance's ``ticker/24hr`` answer: the exact ``lastPrice`` string it sent, at its
    ``closeTime``. ``ids`` maps Binance's market ids to the symbols asked for."""
    rows = {row.get("symbol"): row for row in answer if isinstance(row, dict)} if isinstance(answer, list) else {}
    return {symbol: _quote(symbol, rows.get(market_id), now) for market_id, symbol in ids.items()}


def _quote(symbol: str, row: Any, now: datetime) -> Quote:
    try:
        price = D(str(row["lastPrice"]))
        at_ms = row.get("closeTime")
        at = datetime.fromtimestamp(int(at_ms) / 1000, UTC) if at_ms else now
    except (TypeError, KeyError, ValueError, OverflowError, OSError):
        raise ExchangeBadResponse(f"Binance returned no usable price for {symbol}") from None
    if price <= 0:
        raise ExchangeBadResponse(f"Binance returned a non-positive price for {symbol}: {price}")
    try:
        change = D(str(row["priceChangePercent"]))
    except (KeyError, TypeError, ValueError):
        change = None  # not worth refusing a price for
    return Quote(symbol, price, at, change)


def parse_funding(rows: Any, symbol: str) -> dict[datetime, FundingRate]:
    """Funding rates from Binance's ``fundingRate`` answer, by the hour each was paid."""
    if not isinstance(rows, list):
        raise ExchangeBadResponse("Binance returned an unusable funding-rate response")
    rates = {}
    for row in rows:
        try:
            at = floor_time(datetime.fromtimestamp(int(row["fundingTime"]) / 1000, UTC), "1h")
            mark = _decimal(row.get("markPrice"))
            rates[at] = FundingRate(at, D(str(row["fundingRate"])), mark if mark and mark > 0 else None)
        except (TypeError, KeyError, ValueError, OverflowError, OSError, AttributeError):
            raise ExchangeBadResponse(f"Binance returned an unusable funding rate for {symbol}") from None
    return rates


def _candle(symbol: str, timeframe: str, row: Any) -> Candle:
    # ccxt gives floats; Binance sends at most 8 places and ~15 significant digits, so the float's
    # shortest repr is the exact decimal Binance sent.
    try:
        opened, o, h, low, c = row[0], *(D(str(v)) for v in row[1:5])
        candle = Candle(symbol, timeframe, datetime.fromtimestamp(int(opened) / 1000, UTC), o, h, low, c)
    except (TypeError, ValueError, IndexError, KeyError, OverflowError, OSError):
        raise ExchangeBadResponse(f"Binance returned an unusable candle for {symbol}") from None
    if min(o, h, low, c) <= 0 or low > min(o, c) or h < max(o, c):
        raise ExchangeBadResponse(f"Binance returned an inconsistent candle for {symbol}")
    return candle


def _ticks_of(markets: dict | None) -> dict[str, Decimal]:
    """Each market's price tick (``precision.price``), where it lists one."""
    found = {s: _decimal((m.get("precision") or {}).get("price")) for s, m in (markets or {}).items()}
    return {s: tick for s, tick in found.items() if tick}


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return D(str(value))
    except ValueError:
        return None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _binance_message(body: str) -> str | None:
    """The ``msg`` of Binance's JSON error body, if that is what came."""
    try:
        said = json.loads(body).get("msg")
    except (ValueError, AttributeError):
        return None
    return str(said)[:200] if said else None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is among the exceptions that led to ``exc`` (requests wraps them twice)."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if isinstance(current, kind):
            return True
        if id(current) not in seen:
            seen.add(id(current))
            links = (current.__cause__, current.__context__, *current.args)
            pending.extend(link for link in links if isinstance(link, BaseException))
    return False
