"""Every fault of the fake Binance gives the documented outcome, in bounded requests and time."""

from __future__ import annotations

from decimal import Decimal as D

import pytest


@pytest.fixture
def cached_position(cli, binance):
    """A portfolio with one open BTC position and a cached BTC quote."""
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    return binance


@pytest.mark.parametrize("fault", ["500", "502", "503", "504", "500-json", "503-json", "reset"])
def test_temporary_failure_is_retried_then_succeeds(cli, cached_position, fault):
    binance = cached_position
    binance.prices["BTC/USDT"] = D("41000")
    binance.fail_next(fault)
    before = binance.count("/ticker/24hr")
    result = cli("value", "--json")
    assert binance.count("/ticker/24hr") == before + 2
    assert '"mark": "41000"' in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("fault", ["500", "503", "503-json", "404", "garbage", "empty", "html", "partial", "slow"])
def test_unusable_exchange_falls_back_to_cache_with_stale_warning(cli, cached_position, fault, waits):
    binance = cached_position
    binance.fail_always(fault)
    before = binance.count("/ticker/24hr")
    result = cli("value", "--json")
    assert "stale since" in result.stderr and "BTC/USDT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert '"price_source": "cache"' in result.stdout
    retried = fault in {"500", "503", "503-json", "slow"}
    assert binance.count("/ticker/24hr") - before == (3 if retried else 1)  # max_attempts = 3 in tests
    assert waits == ([0.5, 1.0] if retried else [])  # backoff between the three attempts


def test_timeout_is_bounded_by_the_client_timeout(cli, cached_position, waits):
    binance = cached_position
    binance.fail_next("slow", times=3)
    before = binance.count("/ticker/24hr")
    result = cli("value")
    # Three requests, each given up after the 0.5 s client timeout (the server would take 3 s),
    # with 0.5 s and 1 s of backoff asked for between them.
    assert binance.count("/ticker/24hr") - before == 3
    assert waits == [0.5, 1.0]
    assert "no answer within 0.5 s" in result.stderr


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ("504", "gateway timeout (HTTP 504) after 3 attempt(s)"),
        ("500-json", "server error (HTTP 500 Internal Server Error) after 3 attempt(s)"),
        ("404", "Binance refused the request: HTTP 404 Not Found;"),
        ("403", "Binance refused the request: HTTP 403 Forbidden;"),
    ],
)
def test_a_failure_is_named_for_what_it_is(cli, cached_position, fault, named):
    """A 504 is the gateway's timeout, not ours; a 4xx is a refusal, not a server error, and is not retried."""
    cached_position.fail_always(fault)
    result = cli("value")
    assert named in result.stderr and "stale since" in result.stderr
    assert "no answer within" not in result.stderr and ("HTTP 5" in named) == ("HTTP 5" in result.stderr)


def test_rate_limit_honours_retry_after(cli, cached_position, waits):
    binance = cached_position
    binance.retry_after = 2
    binance.fail_next("429")
    before = binance.count("/ticker/24hr")
    cli("value")
    assert waits == [2.0]  # Retry-After, not the 0.5 s backoff
    assert binance.count("/ticker/24hr") - before == 2


def test_retry_after_longer_than_the_budget_is_not_waited_for(cli, cached_position, waits):
    binance = cached_position
    binance.retry_after = 60
    binance.fail_next("429")
    result = cli("value")
    assert waits == []  # 60 s is beyond the 5 s retry budget: give up at once
    assert "rate limited (HTTP 429)" in result.stderr and "stale since" in result.stderr


def test_ban_stops_all_requests_until_it_ends(cli, cached_position):
    binance = cached_position
    binance.retry_after = 120
    binance.fail_next("418")
    before = len(binance.requests)
    first = cli("value")
    assert "banned" in first.stderr and "stale since" in first.stderr
    assert len(binance.requests) == before + 1  # no retry after a 418
    second = cli("value")
    assert "banned" in second.stderr
    assert len(binance.requests) == before + 1  # nothing sent during the ban


def test_no_cache_and_no_exchange_is_exit_5_naming_the_symbol(cli, binance):
    cli("init")
    binance.fail_always("503")
    result = cli("open", "SOL/USDT", "--qty", "1", code=5)
    assert "SOL/USDT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_symbol_is_exit_4(cli, binance):
    cli("init")
    result = cli("open", "NOPE/USDT", "--qty", "1", code=4)
    assert result.stderr.strip() == "error: unknown symbol NOPE/USDT on Binance"


def test_unreachable_exchange_uses_cache(cli, binance, monkeypatch):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    monkeypatch.setenv("PORTFOLIO_BINANCE_URL", "http://127.0.0.1:9")  # nothing listens there
    result = cli("value")
    assert "cannot connect" in result.stderr and "stale since" in result.stderr


def test_offline_never_touches_the_network(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    before = len(binance.requests)
    cli("value", "--offline")
    cli("open", "BTC/USDT", "--qty", "0.01", "--offline")
    cli("close", "1", "--offline")
    assert len(binance.requests) == before


def test_offline_without_cached_price_is_exit_5(cli, binance):
    cli("init")
    result = cli("open", "ETH/USDT", "--qty", "1", "--offline", code=5)
    assert "ETH/USDT" in result.stderr and "offline" in result.stderr


def test_markets_are_fetched_again_after_a_day(cli, binance, isolated_env):
    import json

    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    cache = isolated_env / "cache" / "binance-markets.json"
    payload = json.loads(cache.read_text())
    payload["fetched_at"] = "2000-01-01T00:00:00+00:00"
    cache.write_text(json.dumps(payload))
    cli("value")
    assert binance.count("/exchangeInfo") == 2


def test_retry_asks_again_only_after_temporary_failures_within_one_budget_per_command():
    from portfolio_cli.errors import ExchangeBadResponse, ExchangeTemporary, ExchangeUnavailable
    from portfolio_cli.prices.binance import RetryBudget, retry

    budget, waits, sent = RetryBudget(max_attempts=3, seconds=5), [], []

    def failing(error):
        def request():
            sent.append(error)
            raise error

        return request

    with pytest.raises(ExchangeBadResponse):  # not temporary: raised at once, not counted
        retry(failing(ExchangeBadResponse("garbled")), budget, waits.append)
    assert (len(sent), budget.failures, waits) == (1, 0, [])
    with pytest.raises(ExchangeUnavailable, match="rate limited after 3 attempt"):
        retry(failing(ExchangeTemporary("rate limited")), budget, waits.append)
    assert (len(sent), waits) == (4, [0.5, 1.0])  # backoff 0.5 s, then 1 s
    with pytest.raises(ExchangeUnavailable, match="rate limited after 3 attempt"):
        retry(failing(ExchangeTemporary("rate limited")), budget, waits.append)
    assert len(sent) == 4  # the command's budget is spent: a later call sends nothing

    long_wait = RetryBudget(max_attempts=3, seconds=5)
    with pytest.raises(ExchangeUnavailable):
        retry(failing(ExchangeTemporary("rate limited", retry_after=6)), long_wait, waits.append)
    assert waits == [0.5, 1.0]  # a Retry-After beyond the budget is not waited for
