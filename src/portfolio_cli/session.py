"""What one command runs with: resolved settings and paths, the ledger, the price book, a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from portfolio_cli.config import Settings, load_settings
from portfolio_cli.engine.records import Candle
from portfolio_cli.errors import LedgerFailure, NotFound
from portfolio_cli.ledger import Ledger, open_ledger
from portfolio_cli.paths import Paths, config_path, resolve_paths
from portfolio_cli.prices import PriceSource
from portfolio_cli.prices.book import PriceBook


def utc_now() -> datetime:
    return datetime.now(UTC)


def pause(seconds: float) -> None:
    """How a session waits (retry backoff). The tests put a recorder here, so that backoff is asserted
    ("asked to wait 1 s"), never waited."""
    time.sleep(seconds)


@dataclass
class Session:
    """One command's settings, paths, ledger, prices and clock."""

    settings: Settings
    paths: Paths
    command: str
    offline: bool = False
    overrides: dict[str, Decimal] = field(default_factory=dict)
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = field(default_factory=lambda: pause)
    warn: Callable[[str], None] = lambda message: None
    source: PriceSource | None = None
    creates_ledger: bool = False  # only `init`, `import` and `demo` make a new ledger file; the others need one
    created_ledger: bool = False  # this command made the ledger file (removed again if the command fails)
    _ledger: Ledger | None = None
    _book: PriceBook | None = None
    # What a command could not process (a symbol, a portfolio): it still commits, and exits 13.
    incomplete: list[str] = field(default_factory=list)
    _fetched: list[tuple[str, Decimal, datetime, str]] = field(default_factory=list)
    _fetched_candles: dict[tuple[str, str, datetime], Candle] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A warning is said once per command, however many of its steps meet the same condition
        # (a dry run of an order checks the order, then its fill).
        said: set[str] = set()
        tell = self.warn

        def once(message: str) -> None:
            if message not in said:
                said.add(message)
                tell(message)

        self.warn = once

    @classmethod
    def create(
        cls,
        command: str,
        db: Path | None = None,
        config: Path | None = None,
        offline: bool = False,
        warn: Callable[[str], None] = lambda message: None,
        creates_ledger: bool = False,
    ) -> Session:
        config_file = config_path(config)
        settings = load_settings(config_file)
        paths = resolve_paths(db, config_file, settings.ledger)
        return cls(settings, paths, command, offline, warn=warn, creates_ledger=creates_ledger)

    @property
    def ledger(self) -> Ledger:
        """The ledger, opened on first use. A missing file is an error, not a new empty ledger (a
        mistyped ``--db`` would otherwise hide every record), except for the commands that create one."""
        if self._ledger is None:
            new = not self._ledger_file_exists()
            if new and not self.creates_ledger:
                raise NotFound(f"no ledger at {self.paths.ledger}; `portfolio init` creates one")
            self._ledger = open_ledger(self.paths.ledger)
            self.created_ledger = new
        return self._ledger

    def has_ledger(self) -> bool:
        return self._ledger is not None or self.creates_ledger or self._ledger_file_exists()

    def _ledger_file_exists(self) -> bool:
        try:
            return self.paths.ledger.exists()
        except OSError:  # a name too long, say: no ledger there (opening it says why, for init)
            return False

    @property
    def prices(self) -> PriceBook:
        if self._book is None:
            source = self.source or self._default_source()
            self._book = PriceBook(source, self, self.overrides, self.clock, self.warn, self.offline)
        return self._book

    # The quote cache, as the price book sees it. Fetched quotes are held until the command has
    # succeeded, so a refused command leaves the ledger exactly as it was.

    def buffer_quotes(self, quotes: list[tuple[str, Decimal, datetime, str]], fetched_at: datetime) -> None:
        self._fetched.extend(quotes)

    def cached_quotes(self, symbols: list[str]) -> dict[str, tuple[Decimal, datetime]]:
        return self.ledger.cached_quotes(symbols)

    def latest_fills(
        self, symbols: list[str], until: datetime | None = None
    ) -> dict[str, tuple[Decimal, Decimal, datetime]]:
        return self.ledger.latest_fills(symbols, until)

    def buffer_candles(self, candles: list[Candle]) -> None:
        self._fetched_candles.update({(c.symbol, c.timeframe, c.open_time): c for c in candles})

    def cached_candles(self, symbol: str, timeframe: str, since: datetime, until: datetime) -> list[Candle]:
        held = [
            c
            for (s, tf, at), c in self._fetched_candles.items()
            if s == symbol and tf == timeframe and since <= at < until
        ]
        return self.ledger.cached_candles(symbol, timeframe, since, until) + held

    def left_out(self, message: str) -> None:
        """Something this command could not process: named now, and the command exits 13."""
        if message not in self.incomplete:
            self.incomplete.append(message)

    def keep_fetched_quotes(self) -> None:
        """Write the quotes and candles this command fetched to the ledger's cache. A cache is best
        effort: this runs after the command's own transaction has committed, so failing to write it
        (a full disk, say) is a warning, never a failure of the command."""
        if (self._fetched or self._fetched_candles) and self.has_ledger():
            try:
                with self.ledger.transaction(self.command, self.clock()):
                    self.ledger.save_quotes(self._fetched, self.clock())
                    self.ledger.save_candles(list(self._fetched_candles.values()))
            except LedgerFailure as exc:
                self.warn(f"the fetched prices were not cached: {exc}")
            self._fetched.clear()
            self._fetched_candles.clear()

    def discard_fetched(self) -> None:
        """Cache nothing this command fetched (a dry run leaves the ledger exactly as it was)."""
        self._fetched.clear()
        self._fetched_candles.clear()

    def forget_prices(self) -> None:
        """Drop the marks already fetched, so the next request asks again (a refreshing view)."""
        self.keep_fetched_quotes()
        self._book = None

    def _default_source(self) -> PriceSource:
        prices = self.settings.prices
        if prices.source == "file" and prices.file is not None:
            from portfolio_cli.prices.static import file_source

            return file_source(prices.file)
        from portfolio_cli.prices.binance import BinanceSource

        return BinanceSource(
            prices, self.paths.cache, clock=self.clock, sleep=self.sleep, offline=self.offline, warn=self.warn
        )

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def discard_new_ledger(self) -> None:
        """After a failed command that created the ledger file: remove it, so a refused `init` or
        `import` leaves no empty ledger behind for the next command to mistake for a real one."""
        if self.created_ledger:
            self.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.paths.ledger}{suffix}").unlink(missing_ok=True)
            self.created_ledger = False
