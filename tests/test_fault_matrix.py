"""Every fault of the fake Binance, always on, against the three kinds of price request the tool makes
(a live quote with a cached one to fall back on, a quote with none, and daily candles for a backfill):
the documented exit code or stale-price warning, the retry rule (temporary faults — 429, every 5xx
whatever its body, timeouts, resets — are asked ``max_attempts`` times, every other fault once), at
most ``max_attempts`` requests per command however many calls it makes, and a bounded time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from fake_binance import FAULTS, TEMPORARY
from test_snapshots import day

ATTEMPTS = 3  # PORTFOLIO_PRICES__MAX_ATTEMPTS in the tests
BUDGET = 5  # PORTFOLIO_PRICES__RETRY_BUDGET_SECONDS in the tests


def requests_for(fault: str) -> int:
    """What one command sends to an exchange failing with ``fault``: asked again only if temporary."""
    return ATTEMPTS if fault in TEMPORARY else 1


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
    if fault == "418":
        binance.retry_after = 600  # a ban that cannot end between the two commands below
    binance.fail_always(fault)
    before = len(binance.requests)
    result = timed("value", "--json", code=0)
    assert "stale since" in result.stderr and '"price_source": "cache"' in result.stdout
    assert len(binance.requests) - before == requests_for(fault)
    if fault == "418":  # banned: not one more request until the ban ends
        timed("value", code=0)
        assert len(binance.requests) - before == 1


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_quote_with_nothing_cached_is_exit_5_naming_the_symbol(cli, binance, timed, fault):
    cli("init")
    binance.fail_always(fault)
    before = len(binance.requests)
    result = timed("open", "SOL/USDT", "--qty", "1", code=5)
    assert "SOL/USDT" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert len(binance.requests) - before == requests_for(fault)  # markets or quote, whichever fails first


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_backfill_without_candles_is_exit_13_naming_the_days(cli, binance, timed, fault):
    cli("init", "--at", day(-3).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-3) + timedelta(hours=1)).isoformat())
    binance.prices["BTC/USDT"] = D(41000)
    binance.fail_always(fault)
    before = len(binance.requests)
    result = timed("snapshot", code=13)
    # The ends of days −3 … −1 (the BTC bought at 01:00 of −3 is open at each) need its daily candles.
    assert f"{day(-3).date()} to {day(-1).date()} (3 days) not snapshotted" in result.stderr
    sent = binance.requests[before:]
    if fault in TEMPORARY or fault == "418":  # the command's budget, or the ban, bounds every request
        assert len(sent) == requests_for(fault)
    else:  # today's quote and the candles are asked for once each, never again
        assert [r.path for r in sent] == ["/api/v3/ticker/24hr", "/api/v3/klines"]
    binance.fail_always(None)
    if fault == "418":
        return  # still banned: the next run waits for the ban to end
    assert cli("snapshot", "--json").stderr == ""  # the next run fills the days


@pytest.mark.parametrize("fault", sorted(TEMPORARY))
def test_a_command_of_many_requests_sends_at_most_max_attempts_to_a_failing_exchange(cli, binance, timed, fault):
    """``check`` over four symbols asks for each one's candles: against an exchange that keeps
    failing, the retries are the command's, not each call's (it once sent 16 requests for 4)."""
    # Hours before now, not before midnight: from 14:40 UTC a window from yesterday's 22:00 is longer
    # than the 1,000 minutes check takes in 1-minute candles, and the test asked for the wrong ones.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    cli("init", "--balance", "60000", "--at", (now - timedelta(hours=3)).isoformat())
    at = (now - timedelta(hours=2)).isoformat()
    positions = (("BTC/USDT", 1, 40000), ("ETH/USDT", 1, 2000), ("SOL/USDT", 10, 100), ("DOGE/USDT", 10000, 0.1))
    for symbol, qty, price in positions:
        cli("open", symbol, "--qty", str(qty), "--price", str(price), "--stop-loss", str(price / 2), "--at", at)
    binance.fail_always(fault)
    before = len(binance.requests)
    result = timed("check", "--quiet", code=13)  # committed, but incomplete
    assert len(binance.requests) - before == ATTEMPTS
    for symbol, _, _ in positions:  # every symbol's window is named on stderr, none invented
        assert f"no 1m candles for {symbol} from" in result.stderr
