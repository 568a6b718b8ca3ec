"""Binance through ccxt: the only module that imports ccxt, and only when a price is needed.

One ``GET /api/v3/ticker/24hr?symbols=[...]`` per command; ``exchangeInfo`` at most once per
``markets_ttl_hours`` (cached on disk). Temporary failures (timeouts, 429, 5xx, dropped
connections) are retried with exponential backoff inside a time budget, honouring ``Retry-After``.
A 418 means the IP is banned: nothing is sent again until the ban ends (remembered on disk).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from portfolio_cli.config import Prices
from portfolio_cli.engine.records import Candle
from portfolio_cli.engine.rules import MarketRules
from portfolio_cli.errors import ExchangeUnavailable, NotFound
from portfolio_cli.money import D
from portfolio_cli.prices import TIMEFRAMES, FundingRate, Quote, floor_time

T = TypeVar("T")
DEFAULT_BAN = timedelta(minutes=5)
# Binance always lists it: a markets list without it is not a real answer.
CANARY = "BTC/USDT"
PAGE = 1000  # candles per request, Binance's maximum
MAX_CANDLE_PAGES = 100  # a misbehaving server cannot keep a command paging forever
MAX_BACKOFF_SECONDS = 8.0


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
        self._ban_file = cache_dir / "binance-ban.json"
        self._clock = clock
        self._sleep = sleep
        self._offline = offline
        self._exchange: Any = None
        self._markets: dict[str, Any] | None = None

    # PriceSource

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        if self._offline:
            raise ExchangeUnavailable("offline")
        self._require_known(symbols)
        exchange = self._client()
        tickers = self._call(lambda: exchange.fetch_tickers(symbols))
        if not isinstance(tickers, dict):
            raise ExchangeUnavailable("Binance returned an unusable ticker response")
        return {symbol: self._quote(symbol, tickers.get(symbol)) for symbol in symbols}

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
        )

    def price_at(self, symbol: str, at: datetime) -> Quote:
        if self._offline:
            raise ExchangeUnavailable("offline")
        self._require_known([symbol])
        exchange = self._client()
        since = int(at.timestamp()) // 60 * 60 * 1000
        candles = self._call(lambda: exchange.fetch_ohlcv(symbol, "1m", since=since, limit=1))
        try:
            opened_ms, open_price = candles[0][0], candles[0][1]
            price = D(str(open_price))
        except (IndexError, TypeError, ValueError, KeyError):
            raise ExchangeUnavailable(f"Binance has no candle for {symbol} at {at:%Y-%m-%d %H:%M} UTC") from None
        if opened_ms != since or price <= 0:
            raise ExchangeUnavailable(f"Binance has no candle for {symbol} at {at:%Y-%m-%d %H:%M} UTC")
        return Quote(symbol, price, datetime.fromtimestamp(opened_ms / 1000, UTC))

    def candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        """Pages of ``fetch_ohlcv`` (1,000 candles each) from ``since``; only complete candles."""
        if self._offline:
            raise ExchangeUnavailable("offline")
        self._require_known([symbol])
        exchange = self._client()
        step = TIMEFRAMES[timeframe]
        end = min(until, floor_time(self._clock(), timeframe))  # the current candle is not complete
        cursor = floor_time(since, timeframe)
        result: list[Candle] = []
        for _ in range(MAX_CANDLE_PAGES):
            if cursor >= end:
                break
            since_ms = int(cursor.timestamp() * 1000)
            rows = self._call(lambda ms=since_ms: exchange.fetch_ohlcv(symbol, timeframe, since=ms, limit=PAGE))
            page = [c for c in (_candle(symbol, timeframe, row) for row in rows or []) if cursor <= c.open_time < end]
            if not page:
                break
            result.extend(page)
            cursor = page[-1].open_time + step
        return result

    def funding_rates(self, symbol: str, since: datetime, until: datetime) -> dict[datetime, FundingRate]:
        """USDT-margined perpetual funding from Binance futures (``/fapi/v1/fundingRate``), by the hour
        it was paid. Spot markets are all this tool loads, so it uses ccxt's raw endpoint method."""
        if self._offline:
            raise ExchangeUnavailable("offline")
        exchange = self._client()
        params = {
            "symbol": symbol.replace("/", ""),
            "startTime": int(since.timestamp() * 1000),
            "endTime": int(until.timestamp() * 1000),
            "limit": 1000,
        }
        rows = self._call(lambda: exchange.fapiPublicGetFundingRate(params))
        if not isinstance(rows, list):
            raise ExchangeUnavailable("Binance returned an unusable funding-rate response")
        rates = {}
        for row in rows:
            try:
                at = floor_time(datetime.fromtimestamp(int(row["fundingTime"]) / 1000, UTC), "1h")
                mark = _decimal(row.get("markPrice"))
                rates[at] = FundingRate(at, D(str(row["fundingRate"])), mark if mark and mark > 0 else None)
            except (TypeError, KeyError, ValueError, OverflowError, OSError):
                raise ExchangeUnavailable(f"Binance returned an unusable funding rate for {symbol}") from None
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
                exchange = self._client()
                cached = self._slim(self._call(exchange.load_markets))
                if CANARY not in cached:  # an empty, partial or garbled answer: never cache it
                    exchange.markets = None
                    raise ExchangeUnavailable("Binance returned an unusable markets list")
                self._write_markets_cache(cached)
            self._markets = cached or {}
        return self._markets

    def _client(self) -> Any:
        if self._exchange is None:
            self._exchange = self._make_client()
        if self._markets and not self._exchange.markets:
            self._exchange.set_markets(self._markets)
        return self._exchange

    def _make_client(self) -> Any:
        import ccxt

        exchange = ccxt.binance(
            {
                "timeout": int(self._settings.timeout_seconds * 1000),
                # A command makes one or two requests; 429s are handled in _call, not by sleeping first.
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
        try:
            cached = json.loads(self._markets_file.read_text())
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
        # ccxt keeps Binance's raw filters under "info"; the unified fields are all we read.
        return {s: {k: v for k, v in m.items() if k != "info"} for s, m in markets.items()}

    def _write_markets_cache(self, markets: dict) -> None:
        payload = {"fetched_at": self._clock().isoformat(), "url": self._settings.binance_url, "markets": markets}
        self._write_cache(self._markets_file, payload)

    def _quote(self, symbol: str, ticker: Any) -> Quote:
        # The exact decimal string Binance sent, not ccxt's float.
        try:
            info = ticker["info"]
            price = D(str(info["lastPrice"]))
            at_ms = info.get("closeTime") or ticker.get("timestamp")
            at = datetime.fromtimestamp(int(at_ms) / 1000, UTC) if at_ms else self._clock()
        except (TypeError, KeyError, ValueError, OverflowError, OSError):
            raise ExchangeUnavailable(f"Binance returned no usable price for {symbol}") from None
        if price <= 0:
            raise ExchangeUnavailable(f"Binance returned a non-positive price for {symbol}: {price}")
        return Quote(symbol, price, at)

    def _call(self, request: Callable[[], T]) -> T:
        import ccxt

        self._refuse_while_banned()
        deadline = time.monotonic() + self._settings.retry_budget_seconds
        for attempt in range(1, self._settings.max_attempts + 1):
            try:
                return request()
            except ccxt.DDoSProtection as exc:
                retry_after = self._retry_after()
                if " 418 " in f" {exc} ":
                    until = self._clock() + (timedelta(seconds=retry_after) if retry_after else DEFAULT_BAN)
                    self._remember_ban(until)
                    raise ExchangeUnavailable(
                        f"Binance has banned this IP (HTTP 418) until {until:%Y-%m-%d %H:%M:%S} UTC"
                    ) from None
                reason, wait = "rate limited (HTTP 429)", retry_after or _backoff(attempt)
            except ccxt.RequestTimeout:
                reason, wait = f"no answer within {self._settings.timeout_seconds:g} s", _backoff(attempt)
            except ccxt.ExchangeNotAvailable:
                reason, wait = "server error (HTTP 5xx)", _backoff(attempt)
            except ccxt.NetworkError:
                reason, wait = "cannot connect", _backoff(attempt)
            except ccxt.BadSymbol as exc:
                raise NotFound(f"unknown symbol on Binance: {exc}") from None
            except ccxt.BaseError as exc:
                raise ExchangeUnavailable(f"Binance refused the request: {_first_line(exc)}") from None
            except (ValueError, TypeError, KeyError, IndexError, AttributeError):
                raise ExchangeUnavailable("Binance returned an unusable response") from None
            if attempt == self._settings.max_attempts or time.monotonic() + wait > deadline:
                raise ExchangeUnavailable(f"Binance unavailable: {reason} after {attempt} attempt(s)")
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _retry_after(self) -> float | None:
        headers = getattr(self._exchange, "last_response_headers", None) or {}
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None

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

    def _write_cache(self, path: Path, payload: dict) -> None:
        """A cache file through the one file writer (a unique temporary name, renamed into place, so
        concurrent cold starts never collide). A cache is best effort: failing to write one (a full
        disk, say) is a warning, never the command's failure."""
        from portfolio_cli.errors import PortfolioError
        from portfolio_cli.files import write_text

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, lambda handle: handle.write(json.dumps(payload)), force=True)
        except (OSError, PortfolioError) as exc:
            self._warn(f"could not cache {path.name}: {exc}")


def _backoff(attempt: int) -> float:
    return min(0.5 * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)


def _candle(symbol: str, timeframe: str, row: Any) -> Candle:
    # ccxt gives floats; Binance sends at most 8 places and ~15 significant digits, so the float's
    # shortest repr is the exact decimal Binance sent.
    try:
        opened, o, h, low, c = row[0], *(D(str(v)) for v in row[1:5])
        candle = Candle(symbol, timeframe, datetime.fromtimestamp(int(opened) / 1000, UTC), o, h, low, c)
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        raise ExchangeUnavailable(f"Binance returned an unusable candle for {symbol}") from None
    if min(o, h, low, c) <= 0 or low > min(o, c) or h < max(o, c):
        raise ExchangeUnavailable(f"Binance returned an inconsistent candle for {symbol}")
    return candle


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return D(str(value))
    except ValueError:
        return None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
