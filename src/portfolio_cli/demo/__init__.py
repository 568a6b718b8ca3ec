"""``portfolio demo``: a scripted portfolio in its own ledger, valued at bundled prices, offline."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from portfolio_cli import services
from portfolio_cli.engine.records import Candle
from portfolio_cli.errors import ConfigInvalid
from portfolio_cli.money import D
from portfolio_cli.paths import user_dir
from portfolio_cli.prices.static import demo_source
from portfolio_cli.services.history import History, history
from portfolio_cli.services.snapshots import take_snapshots
from portfolio_cli.session import Session

DEMO_PORTFOLIO = "demo"

# (when, symbol, qty, price, options) — the demo's trading month, at historical-looking prices.
OPENS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("2026-10-02T09:30", "BTC/USDT", "0.015", "62000", {"strategy": "core", "stop_loss": Decimal(58000)}),
    (
        "2026-10-05T14:00",
        "ETH/USDT",
        "0.6",
        "2400",
        {"leverage": 3, "strategy": "momentum", "stop_loss": Decimal(2200)},
    ),
    (
        "2026-10-08T16:45",
        "SOL/USDT",
        "12",
        "160",
        {"short": True, "leverage": 2, "strategy": "mean-reversion", "stop_loss": Decimal(175)},
    ),
    ("2026-10-15T08:00", "BNB/USDT", "1.6", "580", {"strategy": "core", "stop_loss": Decimal(540)}),
]


def demo_ledger() -> Path:
    """The demo's own ledger, rebuilt on every run."""
    return user_dir() / "demo.db"


def run_demo(session: Session) -> tuple[services.PortfolioValue, History, datetime]:
    """Rebuild the demo ledger from scratch, snapshot its month from the bundled daily prices and
    value it at the bundled quotes. The demo's clock stands at the time of those quotes."""
    path = demo_ledger()
    for leftover in (path, path.with_name("demo.db-wal"), path.with_name("demo.db-shm")):
        leftover.unlink(missing_ok=True)
    source = demo_source()
    as_of = source.as_of
    if as_of is None:
        raise ConfigInvalid("the bundled demo prices have no quotes")
    demo = replace(
        session,
        paths=replace(session.paths, ledger=path),
        source=source,
        overrides={},
        _ledger=None,
        _book=None,
        _fetched=[],
        _fetched_candles={},
        command="portfolio demo",
        clock=lambda: as_of,
        warn=lambda message: None,  # scripted trades: no daily history to check correlation against
    )
    try:
        # The month's daily prices first: a backdated trade is weighed at the prices of its moment.
        demo.buffer_candles(_daily_candles())
        services.init_portfolio(demo, DEMO_PORTFOLIO, Decimal(10_000), at=_at("2026-10-01T00:00"))
        for when, symbol, qty, price, options in OPENS:
            services.open_trade(
                demo,
                DEMO_PORTFOLIO,
                services.OpenRequest(
                    symbol, qty=Decimal(qty), price=Decimal(price), at=_at(when), note="demo", **options
                ),
            )
        # A BTC-quoted pair: its USDT value goes through BTC/USDT at the time of the fill.
        demo.overrides["BTC/USDT"] = Decimal(61_000)
        demo.forget_prices()
        services.open_trade(
            demo,
            DEMO_PORTFOLIO,
            services.OpenRequest(
                "ETH/BTC",
                qty=Decimal("0.2"),
                price=Decimal("0.04"),
                stop_loss=Decimal("0.037"),
                at=_at("2026-10-10T12:00"),
                note="demo",
            ),
        )
        demo.overrides.clear()
        demo.forget_prices()
        services.close_trades(
            demo,
            DEMO_PORTFOLIO,
            "SOL/USDT",
            pct=Decimal(50),
            price=Decimal(150),
            at=_at("2026-10-20T10:00"),
            note="demo: take half off",
        )
        take_snapshots(demo, [DEMO_PORTFOLIO])
        result = services.value(demo, DEMO_PORTFOLIO)
        demo.keep_fetched_quotes()
        return result, history(demo, DEMO_PORTFOLIO, None, None, "week"), as_of
    finally:
        demo.close()


def _daily_candles() -> list[Candle]:
    """The bundled opening prices of each day of the demo's month, as daily candles: a day opens at
    its price and closes at the next day's (the last day, the quotes' day, is not complete yet)."""
    data = json.loads(resources.files("portfolio_cli.demo").joinpath("prices.json").read_text())
    candles = []
    for symbol, opens in data["daily_opens"].items():
        days = sorted(opens)
        for day, after in zip(days, days[1:], strict=False):
            low, high = sorted((D(opens[day]), D(opens[after])))
            candles.append(Candle(symbol, "1d", _at(f"{day}T00:00"), D(opens[day]), high, low, D(opens[after])))
    return candles


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")
