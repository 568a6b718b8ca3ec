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
            (
                c.symbol,
                c.timeframe,
                codec.timestamp(c.open_time),
                str(c.open),
                str(c.high),
                str(c.low),
                str(c.close),
            )
            for c in candles
        ]
        # One prepared statement for every row: sqlite-utils' upsert_all runs an insert and an update
        # per row, which cost a check replaying minute candles most of its time.
        self.conn.executemany(
            "insert into candles (symbol, timeframe, open_time, open, high, low, close) values (?, ?, ?, ?, ?, ?, ?) "
            "on conflict (symbol, timeframe, open_time) do update set open = excluded.open, "
            "high = excluded.high, low = excluded.low, close = excluded.close",
            rows,
        )

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
        fetched = codec.timestamp(fetched_at)
        self.conn.executemany(  # inside the caller's transaction
            "insert into quotes (symbol, price, at, fetched_at, source) values (?, ?, ?, ?, ?) "
            "on conflict (symbol) do update set price = excluded.price, at = excluded.at, "
            "fetched_at = excluded.fetched_at, source = excluded.source",
            [(s, str(p), codec.timestamp(at), fetched, source) for s, p, at, source in quotes],
        )

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
