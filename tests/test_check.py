"""`portfolio check` against the fake Binance with scripted candles: stops, gaps, liquidations,
funding and cross margin calls, booked at the time and price they happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from conftest import ledger_rows

CLOSED, ALERT, WARNING, INCOMPLETE = 12, 11, 10, 13


def minute(offset: int) -> datetime:
    """The start of the minute ``offset`` minutes from now (negative: in the past)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now + timedelta(minutes=offset)


def hour(offset: int) -> datetime:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now + timedelta(hours=offset)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def closes(cli) -> list[dict]:
    return [t for t in cli.json("trades") if t["status"] == "closed"]


def test_stop_hit_inside_a_candle_is_booked_at_the_stop_and_its_minute(cli, binance, ledger_path):
    cli("init", "--at", iso(minute(-120)))
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--stop-loss", "39000", "--at", iso(minute(-60)))
    hit = minute(-30)
    binance.ohlc[("BTC/USDT", "1m", ms(hit))] = (D(40000), D(40100), D(38900), D(39500))

    result = cli("check", "--json", code=CLOSED)
    import json

    report = json.loads(result.stdout)
    [event] = [e for e in report["portfolios"][0]["events"] if e["kind"] == "stop_loss"]
    assert D(event["price"]) == D(39000)
    assert datetime.fromisoformat(event["at"]) == hit
    [trade] = closes(cli)
    assert trade["closed_by"] == "stop_loss"
    assert D(trade["exit"]) == D(39000)
    assert D(trade["realized_pnl"]) == D(-100)  # 0.1 × (39000 − 40000)
    # entry fee 4 + exit fee 0.1 × 39000 × 0.001 = 3.9
    assert D(trade["net_pnl"]) == D("-107.9")
    # A second check finds the position already closed and books nothing more.
    assert cli("check", "--quiet").stdout == ""
    assert len(ledger_rows(ledger_path, "closes")) == 1


def test_a_gap_through_the_stop_fills_at_the_candle_open(cli, binance):
    cli("init", "--at", iso(minute(-120)))
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--stop-loss", "39000", "--at", iso(minute(-60)))
    binance.ohlc[("BTC/USDT", "1m", ms(minute(-20)))] = (D(38500), D(38600), D(38000), D(38400))
    cli("check", code=CLOSED)
    [trade] = closes(cli)
    assert D(trade["exit"]) == D(38500)
    assert D(trade["realized_pnl"]) == D(-150)


def test_take_profit_for_a_short(cli, binance):
    cli("init", "--at", iso(minute(-120)))
    cli(
        "open", "ETH/USDT", "--qty", "1", "--short", "--price", "2000", "--take-profit", "1900",
        "--stop-loss", "2100", "--at", iso(minute(-60)),
    )  # fmt: skip
    binance.ohlc[("ETH/USDT", "1m", ms(minute(-10)))] = (D(1950), D(1960), D(1880), D(1890))
    out = cli("check", code=CLOSED).stdout
    assert "take profit" in out
    [trade] = closes(cli)
    assert trade["closed_by"] == "take_profit"
    assert D(trade["realized_pnl"]) == D(100)


def test_isolated_liquidation_touched_and_recovered_within_the_hour(cli, binance):
    cli("init", "--at", iso(hour(-30)))
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--price", "40000", "--at", iso(hour(-20)))
    # The mark price dipped to 36,000 within the hour and closed at 39,900: liquidation was touched.
    binance.mark_ohlc[("BTC/USDT", "1h", ms(hour(-5)))] = (D(40000), D(40000), D(36000), D(39900))
    result = cli("check", code=CLOSED)
    assert "liquidation" in result.stdout
    [trade] = closes(cli)
    assert trade["closed_by"] == "liquidation"
    # Binance's isolated LP, bracket 1 (0.4 %): (400 − 4000) / (0.1 × 0.004 − 0.1) = 36144.57831325
    assert D(trade["exit"]) == D("36144.57831325")
    # The position loses exactly its margin, 400: gross −385.54216868 plus a clearance fee of the rest.
    assert D(trade["realized_pnl"]) == D("-385.54216868")
    assert D(trade["liquidation_fees"]) == D("14.45783132")
    assert D(trade["realized_pnl"]) - D(trade["liquidation_fees"]) == D(-400)
    costs = cli("trades", "--costs").stdout
    assert "14.46" in costs and "liquidation" in costs and "-385.54" in costs and "liq. fee" in costs
    value = cli.json("value", "--offline")["valuation"]
    # entry fee 0.1 × 40000 × 0.0005 = 2; funding was paid while it was open (0.4 per 8 hours).
    assert D(trade["funding"]) < 0
    assert D(value["wallet_balance"]) == D(10000) - D(2) - D(400) + D(trade["funding"])


def test_funding_across_several_marks_is_booked_once_however_often_check_runs(cli, binance, ledger_path):
    opened = hour(-30)
    cli("init", "--at", iso(hour(-40)))
    cli("open", "ETH/USDT", "--qty", "1", "--short", "--leverage", "2", "--price", "2000", "--at", iso(opened))
    binance.prices["ETH/USDT"] = D(2000)
    expected = [
        moment
        for moment in (hour(-h) for h in range(0, 31))
        if moment.hour % 8 == 0 and opened < moment <= datetime.now(UTC)
    ]
    assert len(expected) >= 3
    total = D("0.2") * len(expected)
    assert f"{total:.2f} ({len(expected)})" in cli("check").stdout  # the total received, in the table
    # Funding is routine: `--quiet` prints nothing and the exit code is 0.
    assert cli("check", "--quiet").stdout == ""
    flows = [r for r in ledger_rows(ledger_path, "cash_flows") if r[2] == "funding"]
    assert sorted(datetime.fromisoformat(r[4]) for r in flows) == sorted(expected)
    # A short receives a positive rate: +1 × 2000 × 0.0001 = 0.2 per payment.
    assert {D(r[3]) for r in flows} == {D("0.2")}
    trade = cli.json("trades")[0]
    assert D(trade["funding"]) == D("0.2") * len(expected)
    assert binance.count("/fapi/v1/fundingRate") >= 1


def test_funding_offline_uses_the_configured_rate(cli, binance, ledger_path, monkeypatch):
    cli("init", "--at", iso(hour(-40)))
    cli("open", "ETH/USDT", "--qty", "1", "--leverage", "2", "--price", "2000", "--at", iso(hour(-30)))
    cli("value")  # caches the current price
    monkeypatch.setenv("PORTFOLIO_TRADING__FUNDING_RATE", "0.0003")
    cli("check", "--offline", code=INCOMPLETE)  # no candles offline: the window is named, exit 13
    flows = [r for r in ledger_rows(ledger_path, "cash_flows") if r[2] == "funding"]
    assert flows and {D(r[3]) for r in flows} == {D("-0.6")}  # a long pays 1 × 2000 × 0.0003
    assert all("configured" in r[6] for r in flows)


def test_cross_account_below_110_closes_the_most_losing_position(cli, binance, ledger_path):
    cli("init", "--balance", "400")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "20", "--cross", "--force")  # IM 200, fee 2
    cli("open", "ETH/USDT", "--qty", "1", "--leverage", "20", "--cross", "--force")  # IM 100, fee 1
    binance.prices["BTC/USDT"] = D(39000)  # u −100
    binance.prices["ETH/USDT"] = D(1995)  # u −5
    # Em = 400 − 3 − 105 = 292 on M = 300: 97.33 % < 110 %.
    out = cli("check", code=CLOSED).stdout
    assert "margin call" in out
    [trade] = closes(cli)
    assert trade["symbol"] == "BTC/USDT" and trade["closed_by"] == "margin_call"
    # a margin call by rule is a market close by this tool: the margin taker fee 0.1 × 39000 × 0.0005
    assert D(trade["liquidation_fees"]) == D("1.95")
    margin = cli.json("margin")
    assert D(margin["account"]["margin_level_pct"]) == D("290.05")  # (400 − 3 − 100 − 1.95 − 5) / 100
    audit = [r for r in ledger_rows(ledger_path, "audit_log") if r[3] == "close trade (margin_call)"]
    assert len(audit) == 1


@pytest.mark.parametrize(
    ("btc", "code", "state"),
    [
        (D(40000), 0, "ok"),  # Em 998 on M 400: 249.5 %
        (D(38000), WARNING, "warning"),  # 798 / 400 = 199.5 %
        (D(36000), ALERT, "liquidation risk"),  # 598 / 400 = 149.5 %
    ],
)
def test_exit_code_reports_the_margin_state(cli, binance, btc, code, state):
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--cross")  # IM 400, fee 2
    binance.prices["BTC/USDT"] = btc
    report = cli("check", "--json", code=code)
    import json

    assert json.loads(report.stdout)["portfolios"][0]["state"] == state


@pytest.mark.parametrize("fault", ["500", "garbage", "429"])
def test_exchange_failure_is_reported_as_a_gap_not_invented(cli, binance, fault):
    cli("init", "--at", iso(minute(-120)))
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--stop-loss", "39000", "--at", iso(minute(-60)))
    cli("value")  # a cached quote to fall back on
    binance.ohlc[("BTC/USDT", "1m", ms(minute(-30)))] = (D(40000), D(40100), D(38900), D(39500))
    binance.fail_always(fault)
    result = cli("check", "--quiet", code=INCOMPLETE)
    assert "no 1m candles for BTC/USDT from" in result.stderr  # the symbol and the window, on stderr
    assert result.stdout == ""  # not repeated in the events cron mails
    assert "stale since" in result.stderr
    assert closes(cli) == []  # the dip it could not see is not invented
    binance.fail_always(None)
    cli("check", code=CLOSED)  # once Binance answers, the same minute is replayed and the stop booked
    [trade] = closes(cli)
    assert D(trade["exit"]) == D(39000)


def test_a_position_opened_while_check_fetched_prices_is_priced_not_a_crash(cli, binance, monkeypatch):
    """The race the concurrency test found: check fetches prices outside the lock, another command
    opens a new symbol, and check's transaction then sees a position it has no price for."""
    from portfolio_cli.services import check

    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    real_fetch = check._fetch

    def fetch_then_someone_opens(*args, **kwargs):
        market = real_fetch(*args, **kwargs)
        cli("open", "ETH/USDT", "--qty", "1")  # the interactive process, between fetch and lock
        return market

    monkeypatch.setattr(check, "_fetch", fetch_then_someone_opens)
    result = cli("check", "--json")
    assert "Traceback" not in result.stderr
    monkeypatch.setattr(check, "_fetch", real_fetch)  # not undo(): that would also drop the isolated home
    cli("verify")


def test_a_trade_opened_while_check_fetched_prices_is_left_to_the_next_check(
    cli, binance, monkeypatch, ledger_path
):
    """The concurrency test's race: a trade another command books after check fetched its prices,
    before that command's quote is cached, has only an older cached quote. Check leaves it (exit 0,
    not 13) and the next check replays its stops from its open."""
    import sqlite3

    from portfolio_cli.services import check

    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")  # a quote of BTC/USDT is cached
    cli("close", "1")
    real_fetch = check._fetch

    def fetch_then_someone_opens(*args, **kwargs):
        market = real_fetch(*args, **kwargs)  # nothing was open: no price of BTC/USDT fetched
        cli("open", "BTC/USDT", "--qty", "0.01", "--price", "40000", "--stop-loss", "39500")
        with sqlite3.connect(ledger_path) as conn:  # its quote not yet written: the cache is a minute old
            conn.execute("update quotes set at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-1 minute')")
        return market

    monkeypatch.setattr(check, "_fetch", fetch_then_someone_opens)
    result = cli("check", "--json", code=0)
    assert "before trade 2 was opened" not in result.stdout + result.stderr
    monkeypatch.setattr(check, "_fetch", real_fetch)
    binance.prices["BTC/USDT"] = D(39000)  # below its stop: the next check closes it
    cli("check", code=12)
    assert [t["status"] for t in cli.json("trades") if t["id"] == 2] == ["closed"]


def test_a_gapped_isolated_liquidation_settles_at_its_price_and_says_so(cli, binance):
    cli("init", "--at", iso(hour(-30)))
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--price", "40000", "--at", iso(hour(-20)))
    # The mark opens the hour at 35,000, below the liquidation price (400 − 4000)/(0.0004 − 0.1) = 36,144.58
    binance.mark_ohlc[("BTC/USDT", "1h", ms(hour(-5)))] = (D(35000), D(35500), D(34000), D(35200))
    shown = " ".join(cli("check", code=CLOSED).stdout.split())  # as one line, however it wrapped
    assert "closed by liquidation at 36,144.58" in shown
    assert "the mark opened beyond it" in shown and "filled at the open" not in shown
    [trade] = closes(cli)
    assert D(trade["exit"]) == D("36144.57831325")
