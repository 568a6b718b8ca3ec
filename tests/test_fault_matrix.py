"""Every fault of the fake Binance, always on, against the three kinds of price request the tool makes
(a live quote with a cached one to fall back on, a quote with none, and daily candles for a backfill):
the documented exit code or stale-price warning, a bounded number of requests, a bounded time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from fake_binance import FAULTS
from test_snapshots import day

ATTEMPTS = 3  # PORTFOLIO_PRICES__MAX_ATTEMPTS in the tests
BUDGET = 5  # PORTFOLIO_PRICES__RETRY_BUDGET_SECONDS in the tests


@pytest.fixture
def timed(cli, waits):
    """Run a command; it may ask to wait between attempts, but never beyond the retry budget."""

    def run(*args: str, code: int):
        before = len(waits)
        result = cli(*args, code=code)
        assert sum(waits[before:]) <= BUDGET, waits
        assert "Traceback" not in result.stderr
        return result

    return run


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_live_quote_falls_back_to_the_cache_with_a_warning(cli, binance, timed, fault):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    binance.fail_always(fault)
    before = binance.count("/ticker/24hr")
    result = timed("value", "--json", code=0)
    assert "stale since" in result.stderr and '"price_source": "cache"' in result.stdout
    sent = binance.count("/ticker/24hr") - before
    assert 1 <= sent <= (1 if fault == "418" else ATTEMPTS)
    if fault == "418":  # banned: not one more request until the ban ends
        timed("value", code=0)
        assert binance.count("/ticker/24hr") - before == 1


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_quote_with_nothing_cached_is_exit_5_naming_the_symbol(cli, binance, timed, fault):
    cli("init")
    binance.fail_always(fault)
    result = timed("open", "SOL/USDT", "--qty", "1", code=5)
    assert "SOL/USDT" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert binance.count("/ticker/24hr") <= ATTEMPTS


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_backfill_without_candles_is_exit_10_naming_the_days(cli, binance, timed, fault):
    cli("init", "--at", day(-3).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-3) + timedelta(hours=1)).isoformat())
    binance.prices["BTC/USDT"] = D(41000)
    binance.fail_always(fault)
    before = binance.count("/klines")
    result = timed("snapshot", code=10)
    assert f"{day(-2).date()} to {day(-1).date()} (2 days) not snapshotted" in result.stderr
    assert binance.count("/klines") - before <= ATTEMPTS  # one paged request, retried at most
    binance.fail_always(None)
    if fault == "418":
        return  # still banned: the next run waits for the ban to end
    assert cli("snapshot", "--json").stderr == ""  # the next run fills the days
