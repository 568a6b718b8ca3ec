"""A Binance-shaped HTTP server on 127.0.0.1 for driving the real ccxt code path in tests.

It serves the spot side, ``/api/v3/exchangeInfo``, ``/api/v3/ticker/24hr`` (one symbol or
``symbols=[...]``), ``/api/v3/klines`` (1m, 1h, 1d; scripted or flat) and ``/api/v3/depth``, and the
USDⓈ-M futures side: ``/fapi/v1/exchangeInfo`` (perpetuals with Binance's filter shapes: PRICE_FILTER,
LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL, liquidationFee), ``/fapi/v1/premiumIndex`` (mark prices, all
symbols or one), ``/fapi/v1/markPriceKlines``, ``/fapi/v1/fundingRate`` (each symbol at its own
interval: 8 h, 4 h or 1 h, changeable mid-stream), ``/fapi/v1/fundingInfo``, ``/fapi/v1/ticker/price``
and ``/fapi/v1/depth``. A pair with no perpetual answers Binance's "Invalid symbol" (code -1121) on the
futures side. It counts every request, and injects faults on demand:
429 (with Retry-After), 418, 500/502/503/504 with an HTML body and 500/503 with Binance's JSON
error body, 403 and 404, a response slower than the client's timeout, malformed / empty / HTML 200
bodies and a reset connection.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MARKETS = {
    # symbol: (base, quote, step size, min qty, min notional)
    "BTC/USDT": ("BTC", "USDT", "0.00001000", "0.00001000", "5.00000000"),
    "ETH/USDT": ("ETH", "USDT", "0.00010000", "0.00010000", "5.00000000"),
    "SOL/USDT": ("SOL", "USDT", "0.00100000", "0.00100000", "5.00000000"),
    "ETH/BTC": ("ETH", "BTC", "0.00010000", "0.00010000", "0.00010000"),
    "DOGE/USDT": ("DOGE", "USDT", "1.00000000", "1.00000000", "1.00000000"),
    # listed on spot, with no USDⓈ-M perpetual
    "WBTC/USDT": ("WBTC", "USDT", "0.00001000", "0.00001000", "5.00000000"),
}
# Spot tick sizes and MARKET_LOT_SIZE maxima (Binance's recorded filters; the rest get no market cap).
SPOT_TICKS = {"BTC/USDT": "0.01000000", "ETH/USDT": "0.01000000", "SOL/USDT": "0.01000000",
              "ETH/BTC": "0.00001000", "DOGE/USDT": "0.00001000", "WBTC/USDT": "0.01000000"}
SPOT_MARKET_MAX = {"BTC/USDT": "128.50000000", "ETH/USDT": "3277.50000000"}

PERPETUALS = {
    # symbol: (tick size, step size, min qty, max qty, market max qty, min notional, liquidation fee)
    "BTC/USDT": ("0.10", "0.001", "0.001", "1000", "120", "100", "0.012500"),
    "ETH/USDT": ("0.01", "0.001", "0.001", "10000", "2000", "20", "0.012500"),
    "SOL/USDT": ("0.0100", "1", "1", "1000000", "5000", "5", "0.015000"),
    "DOGE/USDT": ("0.000010", "1", "1", "50000000", "30000000", "5", "0.010000"),
}
# Funding interval in hours of each perpetual at the start (Binance moves some to 4 h or 1 h).
FUNDING_HOURS = {"BTC/USDT": 8, "ETH/USDT": 8, "SOL/USDT": 4, "DOGE/USDT": 1}
HOUR_MS = 3_600_000

FAULTS = {
    "429", "418", "500", "502", "503", "504", "500-json", "503-json", "403", "404",
    "slow", "garbage", "empty", "html", "reset", "partial",
}  # fmt: skip
# The faults worth asking again after: rate limits, every 5xx whatever the body, timeouts, resets.
TEMPORARY = {"429", "500", "502", "503", "504", "500-json", "503-json", "slow", "reset"}
# Binance's own JSON error bodies for 500 and 503.
JSON_ERRORS = {
    "500-json": (500, {"code": -1000, "msg": "An unknown error occurred while processing the request."}),
    "503-json": (503, {"code": -1008, "msg": "Server is currently overloaded with other requests."}),
}


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    at: float


@dataclass
class FakeBinance:
    prices: dict[str, Decimal] = field(default_factory=dict)
    # Opening prices of 1-minute candles, by (symbol, minute start in ms); else the current price.
    candles: dict[tuple[str, int], Decimal] = field(default_factory=dict)
    # Scripted candles by (symbol, interval, open ms): (open, high, low, close). Unscripted candles
    # are flat at the current price.
    ohlc: dict[tuple[str, str, int], tuple[Decimal, Decimal, Decimal, Decimal]] = field(default_factory=dict)
    # Funding rates by (symbol, funding time ms); unscripted 8-hour marks pay ``funding_rate``.
    funding: dict[tuple[str, int], Decimal] = field(default_factory=dict)
    funding_rate: Decimal = Decimal("0.0001")
    # Funding interval changes: symbol -> [(from ms, hours)], applied after FUNDING_HOURS.
    funding_changes: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    # Mark prices of the perpetuals; unset ones mark at the last price.
    marks: dict[str, Decimal] = field(default_factory=dict)
    # Scripted mark-price candles by (symbol, interval, open ms); else flat at the mark.
    mark_ohlc: dict[tuple[str, str, int], tuple[Decimal, Decimal, Decimal, Decimal]] = field(default_factory=dict)
    # Order books by (symbol, "spot" | "futures"): (bids, asks), each [(price, qty)] best first.
    # Unscripted books hold a billion units at the last price on each side.
    books: dict[tuple[str, str], tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]] = field(
        default_factory=dict
    )
    # Perpetuals premiumIndex leaves out (no mark to be had).
    unmarked: set[str] = field(default_factory=set)
    # Books that answer HTTP 503, by (symbol, "spot" | "futures").
    books_down: set[tuple[str, str]] = field(default_factory=set)
    change_24h_pct: dict[str, Decimal] = field(default_factory=dict)  # the ticker's 24-hour change
    requests: list[Request] = field(default_factory=list)
    retry_after: int | None = 1
    slow_seconds: float = 3.0
    _faults: list[str] = field(default_factory=list)
    _always: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def fail_next(self, fault: str, times: int = 1) -> None:
        assert fault in FAULTS, fault
        with self._lock:
            self._faults.extend([fault] * times)

    def fail_always(self, fault: str | None) -> None:
        assert fault is None or fault in FAULTS, fault
        self._always = fault

    def next_fault(self) -> str | None:
        with self._lock:
            if self._faults:
                return self._faults.pop(0)
        return self._always

    def count(self, path_end: str) -> int:
        return sum(1 for r in self.requests if r.path.endswith(path_end))

    # Binance-shaped bodies

    def exchange_info(self) -> dict:
        symbols = []
        for symbol, (base, quote, step, min_qty, min_notional) in MARKETS.items():
            market_lot = (
                [{"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": SPOT_MARKET_MAX[symbol],
                  "stepSize": "0.00000000"}]
                if symbol in SPOT_MARKET_MAX
                else []
            )
            symbols.append(
                {
                    "symbol": base + quote,
                    "status": "TRADING",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "orderTypes": ["LIMIT", "MARKET"],
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": True,
                    "permissions": [],
                    "permissionSets": [["SPOT", "MARGIN"]],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": SPOT_TICKS[symbol],
                            "maxPrice": "1000000.00000000",
                            "tickSize": SPOT_TICKS[symbol],
                        },
                        {"filterType": "LOT_SIZE", "minQty": min_qty, "maxQty": "9000000.00000000", "stepSize": step},
                        *market_lot,
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": min_notional,
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def ticker(self, market_id: str) -> dict | None:
        symbol = next((s for s, m in MARKETS.items() if m[0] + m[1] == market_id), None)
        if symbol is None or symbol not in self.prices:
            return None
        price = str(self.prices[symbol])
        now = int(time.time() * 1000)
        return {
            "symbol": market_id,
            "priceChange": "0",
            "priceChangePercent": str(self.change_24h_pct.get(symbol, Decimal(0))),
            "weightedAvgPrice": price,
            "prevClosePrice": price,
            "lastPrice": price,
            "lastQty": "1",
            "bidPrice": price,
            "bidQty": "1",
            "askPrice": price,
            "askQty": "1",
            "openPrice": price,
            "highPrice": price,
            "lowPrice": price,
            "volume": "100",
            "quoteVolume": "100",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 2,
            "count": 2,
        }

    def klines(self, market_id: str, interval: str, since: int, end: int | None, limit: int) -> list | None:
        symbol = _symbol(market_id)
        if symbol is None:
            return None
        step = INTERVALS[interval]
        last = min(end if end is not None else 2**62, int(time.time() * 1000))
        rows = []
        opened = since // step * step if since % step else since
        while len(rows) < limit and opened <= last:
            if (symbol, interval, opened) in self.ohlc:
                o, h, low, c = (str(v) for v in self.ohlc[(symbol, interval, opened)])
            else:
                price = self.candles.get((symbol, opened), self.prices.get(symbol)) if interval == "1m" else None
                price = price if price is not None else self.prices.get(symbol)
                if price is None:
                    break
                o = h = low = c = str(price)
            rows.append([opened, o, h, low, c, "1", opened + step - 1, c, 1, "0", "0", "0"])
            opened += step
        return rows

    def funding_hours_at(self, symbol: str, moment: int) -> int:
        hours = FUNDING_HOURS[symbol]
        for since, changed in sorted(self.funding_changes.get(symbol, [])):
            if moment >= since:
                hours = changed
        return hours

    def funding_rates(self, market_id: str, start: int, end: int) -> list[dict] | None:
        """Settlements in ``[start, end]``: every interval hour (UTC-aligned) of the symbol's interval
        at that moment; the times carry a few milliseconds, as Binance's do."""
        symbol = _perpetual(market_id)
        if symbol is None:
            return None
        rows = []
        moment = -(-start // HOUR_MS) * HOUR_MS
        while moment <= end and len(rows) < 1000:
            if moment % (self.funding_hours_at(symbol, moment) * HOUR_MS) == 0:
                rate = self.funding.get((symbol, moment), self.funding_rate)
                rows.append(
                    {"symbol": market_id, "fundingTime": moment + 3, "fundingRate": str(rate),
                     "markPrice": str(self.mark(symbol))}
                )
            moment += HOUR_MS
        return rows

    def mark(self, symbol: str) -> Decimal:
        return self.marks.get(symbol, self.prices.get(symbol, Decimal(0)))

    def futures_exchange_info(self) -> dict:
        symbols = []
        for symbol, (tick, step, min_qty, max_qty, market_max, notional, liq_fee) in PERPETUALS.items():
            base, quote = symbol.split("/")
            symbols.append(
                {
                    "symbol": base + quote,
                    "pair": base + quote,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": base,
                    "quoteAsset": quote,
                    "marginAsset": quote,
                    "pricePrecision": len(tick.split(".")[1]) if "." in tick else 0,
                    "quantityPrecision": len(step.split(".")[1]) if "." in step else 0,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "settlePlan": 0,
                    "triggerProtect": "0.0500",
                    "liquidationFee": liq_fee,
                    "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": [
                        {"minPrice": tick, "maxPrice": "4529764", "filterType": "PRICE_FILTER", "tickSize": tick},
                        {"stepSize": step, "filterType": "LOT_SIZE", "maxQty": max_qty, "minQty": min_qty},
                        {"stepSize": step, "filterType": "MARKET_LOT_SIZE", "maxQty": market_max, "minQty": min_qty},
                        {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
                        {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"},
                        {"notional": notional, "filterType": "MIN_NOTIONAL"},
                        {"multiplierDown": "0.9500", "multiplierUp": "1.0500", "multiplierDecimal": "4",
                         "filterType": "PERCENT_PRICE"},
                    ],
                    "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                                   "TRAILING_STOP_MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "futuresType": "U_MARGINED",
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        }

    def premium_index(self, market_id: str | None) -> list[dict] | dict | None:
        now = int(time.time() * 1000)

        def row(symbol: str) -> dict:
            hours = self.funding_hours_at(symbol, now)
            step = hours * HOUR_MS
            return {
                "symbol": _id(symbol),
                "markPrice": str(self.mark(symbol)),
                "indexPrice": str(self.mark(symbol)),
                "estimatedSettlePrice": str(self.mark(symbol)),
                "lastFundingRate": str(self.funding_rate),
                "interestRate": "0.00010000",
                "nextFundingTime": (now // step + 1) * step,
                "time": now,
            }

        listed = [s for s in PERPETUALS if (s in self.prices or s in self.marks) and s not in self.unmarked]
        if market_id is None:
            return [row(s) for s in listed]
        symbol = _perpetual(market_id)
        return row(symbol) if symbol in listed else None

    def funding_info(self) -> list[dict]:
        now = int(time.time() * 1000)
        return [
            {"symbol": _id(s), "adjustedFundingRateCap": "0.02000000", "adjustedFundingRateFloor": "-0.02000000",
             "fundingIntervalHours": self.funding_hours_at(s, now), "disclaimer": False}
            for s in PERPETUALS
            if self.funding_hours_at(s, now) != 8
        ]

    def mark_klines(self, market_id: str, interval: str, since: int, end: int | None, limit: int) -> list | None:
        symbol = _perpetual(market_id)
        if symbol is None:
            return None
        step = INTERVALS[interval]
        last = min(end if end is not None else 2**62, int(time.time() * 1000))
        rows = []
        opened = since // step * step if since % step else since
        while len(rows) < limit and opened <= last:
            if (symbol, interval, opened) in self.mark_ohlc:
                o, h, low, c = (str(v) for v in self.mark_ohlc[(symbol, interval, opened)])
            else:
                o = h = low = c = str(self.mark(symbol))
            rows.append([opened, o, h, low, c, "0", opened + step - 1, "0", 0, "0", "0", "0"])
            opened += step
        return rows

    def depth(self, market_id: str, side: str, limit: int) -> dict | None:
        symbol = _symbol(market_id) if side == "spot" else _perpetual(market_id)
        if symbol is None:
            return None
        if (symbol, side) in self.books:
            bids, asks = self.books[(symbol, side)]
        else:
            price = self.prices.get(symbol)
            if price is None:
                return None
            bids, asks = [(price, Decimal(10) ** 9)], [(price, Decimal(10) ** 9)]
        now = int(time.time() * 1000)
        body = {
            "lastUpdateId": 1027024,
            "bids": [[str(p), str(q)] for p, q in bids[:limit]],
            "asks": [[str(p), str(q)] for p, q in asks[:limit]],
        }
        if side == "futures":
            body.update({"E": now, "T": now})
        return body


INTERVALS = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}


def _symbol(market_id: str) -> str | None:
    return next((s for s, m in MARKETS.items() if m[0] + m[1] == market_id), None)


def _perpetual(market_id: str) -> str | None:
    return next((s for s in PERPETUALS if _id(s) == market_id), None)


def _id(symbol: str) -> str:
    return symbol.replace("/", "")


INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}


def _handler(server: FakeBinanceServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            # The fake of the test running now; a slow answer from an earlier test keeps its own.
            fake = self.fake = server.fake
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            fake.requests.append(Request(parts.path, query, time.monotonic()))
            fault = fake.next_fault()
            if fault and self._fault(fault):
                return
            if parts.path == "/api/v3/exchangeInfo":
                return self._json(200, fake.exchange_info())
            if parts.path == "/api/v3/ticker/24hr":
                return self._tickers(query)
            if parts.path == "/api/v3/klines":
                end = int(query["endTime"][0]) if "endTime" in query else None
                limit = int(query.get("limit", ["500"])[0])
                rows = fake.klines(query["symbol"][0], query["interval"][0], int(query["startTime"][0]), end, limit)
                if rows is None:
                    return self._json(400, {"code": -1121, "msg": "Invalid symbol."})
                return self._json(200, rows)
            if parts.path == "/fapi/v1/fundingRate":
                start, end = int(query["startTime"][0]), int(query["endTime"][0])
                rows = fake.funding_rates(query["symbol"][0], start, end)
                return self._json(400, INVALID_SYMBOL) if rows is None else self._json(200, rows)
            if parts.path == "/fapi/v1/exchangeInfo":
                return self._json(200, fake.futures_exchange_info())
            if parts.path == "/fapi/v1/premiumIndex":
                body = fake.premium_index(query["symbol"][0] if "symbol" in query else None)
                return self._json(400, INVALID_SYMBOL) if body is None else self._json(200, body)
            if parts.path == "/fapi/v1/fundingInfo":
                return self._json(200, fake.funding_info())
            if parts.path == "/fapi/v1/markPriceKlines":
                end = int(query["endTime"][0]) if "endTime" in query else None
                limit = int(query.get("limit", ["500"])[0])
                rows = fake.mark_klines(query["symbol"][0], query["interval"][0], int(query["startTime"][0]), end, limit)
                return self._json(400, INVALID_SYMBOL) if rows is None else self._json(200, rows)
            if parts.path == "/fapi/v1/ticker/price":
                symbol = _perpetual(query["symbol"][0])
                if symbol is None or symbol not in fake.prices:
                    return self._json(400, INVALID_SYMBOL)
                body = {"symbol": query["symbol"][0], "price": str(fake.prices[symbol]), "time": int(time.time() * 1000)}
                return self._json(200, body)
            if parts.path in ("/api/v3/depth", "/fapi/v1/depth"):
                side = "spot" if parts.path.startswith("/api") else "futures"
                if (_symbol(query["symbol"][0]) or "", side) in fake.books_down:
                    return self._json(503, {"code": -1008, "msg": "Server is currently overloaded with other requests."})
                book = fake.depth(query["symbol"][0], side, int(query.get("limit", ["100"])[0]))
                return self._json(400, INVALID_SYMBOL) if book is None else self._json(200, book)
            return self._json(404, {"code": -1, "msg": "not found"})

        def _tickers(self, query: dict[str, list[str]]) -> None:
            fake = self.fake
            ids = json.loads(query["symbols"][0]) if "symbols" in query else [query["symbol"][0]]
            tickers = [fake.ticker(market_id) for market_id in ids]
            if any(t is None for t in tickers):
                return self._json(400, {"code": -1121, "msg": "Invalid symbol."})
            return self._json(200, tickers if "symbols" in query else tickers[0])

        def _fault(self, fault: str) -> bool:
            fake = self.fake
            if fault == "slow":
                time.sleep(fake.slow_seconds)
                return False
            if fault == "reset":
                # RST instead of FIN: the client sees "connection reset by peer".
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return True
            if fault in {"429", "418"}:
                headers = {"Retry-After": str(fake.retry_after)} if fake.retry_after is not None else {}
                self._json(int(fault), {"code": -1003, "msg": "Too many requests."}, headers)
            elif fault in {"500", "502", "503", "504"}:
                self._raw(int(fault), b"<html><body>Service unavailable</body></html>", "text/html")
            elif fault in JSON_ERRORS:
                self._json(*JSON_ERRORS[fault])
            elif fault in {"403", "404"}:
                self._raw(int(fault), b"<html><body>Not here</body></html>", "text/html")
            elif fault == "garbage":
                self._raw(200, b'{"symbol": "BTCUSDT", "lastPrice": ', "application/json")
            elif fault == "empty":
                self._raw(200, b"", "application/json")
            elif fault == "html":
                self._raw(200, b"<!doctype html><html><body>captive portal</body></html>", "text/html")
            elif fault == "partial":
                self._json(200, [{"symbol": "BTCUSDT"}])
            return True

        def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            self._raw(status, json.dumps(body).encode(), "application/json", headers)

        def _raw(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up on a slow answer leaves a broken pipe: expected here


class FakeBinanceServer:
    """Start with ``with FakeBinanceServer(fake) as url:``; stops and joins on exit.

    One server can serve many tests: ``reset(fake)`` swaps in a fresh fake (prices, faults, request
    log) without a restart, so the suite starts it once per session."""

    def __init__(self, fake: FakeBinance):
        self.fake = fake
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        # A short poll interval: shutdown() waits for the serving loop's next poll.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"

    def reset(self, fake: FakeBinance) -> FakeBinance:
        fake.url = self.url
        self.fake = fake
        return fake

    def __enter__(self) -> str:
        self._thread.start()
        self.fake.url = self.url
        return self.url

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
