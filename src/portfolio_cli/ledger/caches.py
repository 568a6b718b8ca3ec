"""Caches kept in the ledger file: complete candles and last known quotes. A cache, not a record:
not audited, and written whether or not a command's transaction is open."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from portfolio_cli.engine.records import Candle
from portfolio_cli.ledger import codec
from portfolio_cli.ledger.connection import Connection


class Caches(Connection):
    """The candle and quote caches."""

    # candle cache (complete candles only; a cache, not a record: not audited)

    def save_candles(self, candles: list[Candle]) -> None:
        rows = [
            {
                "symbol": c.symbol,
                "timeframe": c.timeframe,
                "open_time": codec.timestamp(c.open_time),
                "open": str(c.open),
                "high": str(c.high),
                "low": str(c.low),
                "close": str(c.close),
            }
            for c in candles
        ]
        if rows:
            self.db.table("candles").upsert_all(rows, pk=("symbol", "timeframe", "open_time"))

    def cached_candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        sql = (
            "select * from candles where symbol = ? and timeframe = ? and open_time >= ? and open_time < ? "
            "order by open_time"
        )
        rows = self._rows(sql, [symbol, timeframe, codec.timestamp(since), codec.timestamp(until)])
        return [
            Candle(
                r["symbol"],
                r["timeframe"],
                codec.moment(r["open_time"]),
                codec.decimal(r["open"]),
                codec.decimal(r["high"]),
                codec.decimal(r["low"]),
                codec.decimal(r["close"]),
            )
            for r in rows
        ]

    # quote cache (a cache, not a record: not audited)

    def save_quotes(self, quotes: list[tuple[str, Decimal, datetime, str]], fetched_at: datetime) -> None:
        rows = [
            {
                "symbol": s,
                "price": str(p),
                "at": codec.timestamp(at),
                "fetched_at": codec.timestamp(fetched_at),
                "source": source,
            }
            for s, p, at, source in quotes
        ]
        if rows:
            self.db.table("quotes").upsert_all(rows, pk="symbol")  # inside the caller's transaction

    def cached_quotes(self, symbols: list[str]) -> dict[str, tuple[Decimal, datetime]]:
        if not symbols:
            return {}
        marks = ",".join("?" * len(symbols))
        rows = self._rows(f"select symbol, price, at from quotes where symbol in ({marks})", symbols)
        return {r["symbol"]: (codec.decimal(r["price"]), codec.moment(r["at"])) for r in rows}

    def latest_fills(
        self, symbols: list[str], until: datetime | None = None
    ) -> dict[str, tuple[Decimal, Decimal, datetime]]:
        """The newest fill (an open or a close, in any portfolio) of each symbol, at or before ``until``
        if given: its price, its USDT price and its time. The last price the ledger knows when no
        quote is cached."""
        if not symbols:
            return {}
        marks = ",".join("?" * len(symbols))
        sql = (
            f"select symbol, price, price_usdt, opened_at as at from live_trades where symbol in ({marks}) "
            "union all select t.symbol, c.price, c.price_usdt, c.closed_at from live_closes c "
            f"join trades t on t.id = c.trade_id where t.symbol in ({marks})"
        )
        found: dict[str, tuple[Decimal, Decimal, datetime]] = {}
        for r in self._rows(sql, [*symbols, *symbols]):
            at = codec.moment(r["at"])
            if until is not None and at > until:
                continue
            if r["symbol"] not in found or at > found[r["symbol"]][2]:
                found[r["symbol"]] = (codec.decimal(r["price"]), codec.decimal(r["price_usdt"]), at)
        return found
