"""The report's quant figures against hand-worked series: drawdown episodes, VaR and CVaR, skew and
kurtosis, trailing returns, the trade breakdowns, correlation and beta, and the report carrying them
(table at 80 columns, JSON, CSV)."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from portfolio_cli.engine import stats
from portfolio_cli.engine.metrics import (
    DailyEquity,
    Undefined,
    conditional_value_at_risk,
    daily_returns,
    deepest,
    drawdown_episodes,
    drawdowns,
    kurtosis,
    rolling_max_drawdown,
    rolling_sharpe,
    sharpe,
    skew,
    trailing_returns,
    value_at_risk,
)
from portfolio_cli.engine.trades import ClosedTrade, breakdowns, exposure_time, trade_stats


def curve(start: date, *equity: str) -> list[DailyEquity]:
    return [DailyEquity(start + timedelta(n), D(e), D(0)) for n, e in enumerate(equity)]


# Day 0 … 7: up to 110, down to 99 (−10 %), back to 110 on day 4; a new peak of 121 on day 5,
# down to 102.85 (−15 %) on day 6, 110 on day 7: not recovered.
EPISODES = curve(date(2026, 3, 1), "100", "110", "99", "104.5", "110", "121", "102.85", "110")


def test_drawdown_episodes_run_from_peak_through_trough_to_recovery():
    first, second = drawdown_episodes(EPISODES, daily_returns(EPISODES))
    assert (first.peak, first.trough, first.recovery) == (date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 5))
    assert first.depth == pytest.approx(99 / 110 - 1)  # −10 %
    assert first.amount == pytest.approx(11)  # 10 % of the 110 at the peak
    assert (first.days_to_trough, first.days_to_recover, first.length_days) == (1, 2, 3)
    assert (second.peak, second.trough, second.recovery) == (date(2026, 3, 6), date(2026, 3, 7), None)
    assert second.depth == pytest.approx(-0.15) and second.amount == pytest.approx(18.15)  # 15 % of 121
    assert (second.days_to_trough, second.days_to_recover, second.length_days) == (1, None, 2)  # to the last day
    assert deepest([first, second]) == [second, first]
    # The summary figures are the episodes'.
    dd = drawdowns(EPISODES, daily_returns(EPISODES))
    assert (dd.max_frac, dd.max_amount) == (second.depth, second.amount)
    assert dd.current_frac == pytest.approx(110 / 121 - 1)
    assert (dd.days_since_peak, dd.longest_days) == (2, 3)


def test_a_curve_that_never_falls_has_no_episode():
    rising = curve(date(2026, 1, 1), "100", "101", "101", "105")
    assert drawdown_episodes(rising, daily_returns(rising)) == []
    dd = drawdowns(rising, daily_returns(rising))
    assert (dd.max_frac, dd.days_since_peak, dd.longest_days) == (0.0, 0, 0)


def test_historical_var_and_cvar_follow_empyricals_conventions():
    # 21 returns −5 % … +15 %: the 5 % quantile sits at order statistic (21 − 1) · 0.05 = 1, −4 %;
    # CVaR averages the ⌊20 · 0.05⌋ + 1 = 2 lowest: (−5 % − 4 %) / 2.
    returns = [(k - 5) / 100 for k in range(21)]
    random.Random(7).shuffle(returns)
    assert value_at_risk(returns) == pytest.approx(-0.04, abs=1e-15)
    assert conditional_value_at_risk(returns) == pytest.approx(-0.045, abs=1e-15)
    # 11 returns: the quantile falls at 0.5, halfway between the two lowest (−5 %, −3 %); CVaR is the
    # lowest alone (⌊10 · 0.05⌋ + 1 = 1).
    eleven = [-0.05, -0.03, *(k / 100 for k in range(9))]
    assert value_at_risk(eleven) == pytest.approx(-0.04, abs=1e-15)
    assert conditional_value_at_risk(eleven) == pytest.approx(-0.05, abs=1e-15)
    assert isinstance(value_at_risk([0.01]), Undefined)


def test_skew_and_excess_kurtosis_are_the_bias_corrected_sample_moments():
    # r = 10 %, −10 %, 10 %, 0: mean 2.5 %, deviations 7.5, −12.5, 7.5, −2.5 (%), s² = 0.0275 / 3;
    # Σd³ = −0.001125, Σd⁴ = 0.0003078125.
    returns = [0.1, -0.1, 0.1, 0.0]
    s2 = 0.0275 / 3
    g1 = 4 / (3 * 2) * -0.001125 / s2**1.5  # −0.85456…
    g2 = 4 * 5 / (3 * 2 * 1) * 0.0003078125 / s2**2 - 3 * 3**2 / (2 * 1)  # −1.28926…
    assert skew(returns) == pytest.approx(g1, rel=1e-12) and skew(returns) == pytest.approx(-0.8545630383, abs=1e-9)
    assert kurtosis(returns) == pytest.approx(g2, rel=1e-12)
    assert kurtosis(returns) == pytest.approx(-1.2892562, abs=1e-7)
    assert isinstance(skew([0.1, 0.2]), Undefined) and isinstance(kurtosis([0.1, 0.2, 0.3]), Undefined)
    assert skew([0.01] * 5) == Undefined("the daily returns do not vary")


def _quarter(skip: date | None = None) -> list[DailyEquity]:
    """31 Dec 2025 … 31 Mar 2026: 100 through January, 120 in February, 90 in March, 99 on 31 March."""
    days, day = [], date(2025, 12, 31)
    while day <= date(2026, 3, 31):
        equity = "100" if day.month in (12, 1) else "120" if day.month == 2 else "90"
        if day != skip:
            days.append(DailyEquity(day, D("99") if day == date(2026, 3, 31) else D(equity), D(0)))
        day += timedelta(1)
    return days


def test_trailing_returns_start_from_the_snapshot_whole_calendar_months_before():
    days = _quarter()
    trailing = trailing_returns(days, daily_returns(days))
    assert list(trailing) == ["1m", "3m", "6m", "ytd", "1y", "inception"]
    assert trailing["1m"] == pytest.approx(99 / 120 - 1)  # from 28 February (31 March less a month)
    assert trailing["3m"] == pytest.approx(99 / 100 - 1)  # from 31 December
    assert trailing["ytd"] == pytest.approx(99 / 100 - 1)  # the year's days: from 31 December
    assert trailing["inception"] == pytest.approx(99 / 100 - 1)
    assert trailing["6m"] == Undefined("the range starts after 2025-09-30")
    assert isinstance(trailing["1y"], Undefined)
    gap = _quarter(skip=date(2026, 2, 28))
    assert trailing_returns(gap, daily_returns(gap))["1m"] == Undefined("no snapshot of 2026-02-28")


def test_rolling_windows_agree_with_the_direct_formulas_on_a_long_curve():
    rng = random.Random(3)
    equity, days = 1000.0, []
    for n in range(400):
        days.append(DailyEquity(date(2025, 1, 1) + timedelta(n), D(f"{equity:.8f}"), D(0)))
        equity *= 1 + rng.gauss(0.001, 0.03)
    returns = daily_returns(days)
    for k, (day, value) in enumerate(rolling_sharpe(days, returns)):
        assert day == days[k + 30].day
        assert value == pytest.approx(sharpe(returns[k : k + 30]), rel=1e-9)
    for k, (day, value) in enumerate(rolling_max_drawdown(days, returns)):
        window = [float(d.equity) for d in days[k : k + 91]]
        worst = min(e / max(window[: i + 1]) - 1 for i, e in enumerate(window))
        assert day == days[k + 90].day and value == pytest.approx(worst, abs=1e-9)


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def closed(pnl: str, hours: int, symbol: str, strategy: str | None, side: str, reason: str) -> ClosedTrade:
    return ClosedTrade(D(pnl), T0, T0 + timedelta(hours=hours), strategy, symbol, side, reason)


TRADES = [
    closed("30", 2, "BTC/USDT", "trend", "long", "take_profit"),
    closed("-10", 4, "BTC/USDT", "trend", "long", "stop_loss"),
    closed("-20", 6, "ETH/USDT", None, "short", "liquidation"),
    closed("0", 8, "ETH/USDT", "trend", "short", "manual"),
    closed("15", 10, "SOL/USDT", None, "long", "manual"),
]


def test_trade_breakdowns_by_symbol_strategy_side_and_exit_reason():
    groups = breakdowns(TRADES)
    rows = {key: {b.name: b for b in group} for key, group in groups.items()}
    btc = rows["symbol"]["BTC/USDT"]
    assert (btc.count, btc.win_rate, btc.net_pnl, btc.profit_factor) == (2, 0.5, D(20), 3.0)  # 30 / 10
    assert btc.average_holding == timedelta(hours=3)
    eth = rows["symbol"]["ETH/USDT"]
    assert (eth.count, eth.win_rate, eth.net_pnl, eth.profit_factor) == (2, 0.0, D(-20), 0.0)
    assert rows["symbol"]["SOL/USDT"].profit_factor == Undefined("no losing trades")
    assert [b.name for b in groups["symbol"]] == ["BTC/USDT", "SOL/USDT", "ETH/USDT"]  # by net PnL
    trend, untagged = rows["strategy"]["trend"], rows["strategy"]["(untagged)"]
    assert (trend.count, trend.net_pnl, trend.win_rate) == (3, D(20), pytest.approx(1 / 3))
    assert (untagged.count, untagged.net_pnl, untagged.profit_factor) == (2, D(-5), 0.75)  # 15 / 20
    assert {n: (b.count, b.net_pnl) for n, b in rows["side"].items()} == {"long": (3, D(35)), "short": (2, D(-20))}
    assert {n: b.count for n, b in rows["exit_reason"].items()} == {
        "take_profit": 1, "stop_loss": 1, "liquidation": 1, "manual": 2,
    }  # fmt: skip
    assert rows["exit_reason"]["manual"].average_holding == timedelta(hours=9)


def test_payoff_ratio_and_breakeven_count():
    s = trade_stats(TRADES)
    # Wins 30 and 15 (average 22.5), losses −10 and −20 (average −15): 22.5 / 15; one breakeven.
    assert s.payoff_ratio == pytest.approx(1.5) and s.breakevens == 1
    only_wins = trade_stats(TRADES[:1])
    assert only_wins.payoff_ratio == Undefined("no losing trades") and only_wins.breakevens == 0


def test_exposure_time_is_the_union_of_the_holding_spans_within_the_range():
    hours = [T0 + timedelta(hours=h) for h in range(25)]
    # Range 0 h … 20 h. Held 2–6 h and 4–8 h (overlapping: 2–8 h), 10–11 h, and from 18 h on, still open;
    # one trade closed before the range began (−5 … 0 h) adds nothing.
    spans = [(hours[2], hours[6]), (hours[4], hours[8]), (hours[10], hours[11]), (hours[18], None)]
    spans.append((T0 - timedelta(hours=5), T0))
    assert exposure_time(spans, hours[0], hours[20]) == pytest.approx((6 + 1 + 2) / 20)
    assert exposure_time([], hours[0], hours[20]) == 0.0
    assert exposure_time(spans, hours[3], hours[3]) == Undefined("the range has no length")


def test_correlation_and_beta_over_the_days_both_assets_have():
    days = [date(2026, 1, 1) + timedelta(n) for n in range(25)]
    a = {d: ((n * 7) % 11 - 5) / 100 for n, d in enumerate(days)}
    b = {d: 2 * a[d] + 0.001 for d in days[:-1]}  # one day fewer: 24 common days
    assert stats.correlation(a, b) == pytest.approx(1.0, abs=1e-12)
    assert stats.beta(b, a) == pytest.approx(2.0, abs=1e-12) and stats.beta(a, b) == pytest.approx(0.5, abs=1e-12)
    opposite = {d: -v for d, v in a.items()}
    assert stats.correlation(a, opposite) == pytest.approx(-1.0, abs=1e-12)
    few = {d: a[d] for d in days[:19]}
    assert stats.correlation(a, few) is None and stats.beta(few, a) is None  # fewer than 20 common days
    flat = dict.fromkeys(days, 0.01)
    assert stats.correlation(a, flat) is None and stats.beta(a, flat) is None
    groups = stats.correlated_groups({"A": a, "B": b, "C": opposite, "F": flat}, 0.8)
    assert sorted(map(sorted, groups)) == [["A", "B"], ["C"], ["F"]]


# The report carrying them, end to end (the scripted portfolio of test_report).

from test_report import traded  # noqa: E402,F401  (the fixture)


def test_report_json_and_csv_carry_the_new_figures(traded):  # noqa: F811
    r = traded.json("report")
    by_symbol = {row["name"]: row for row in r["breakdowns"]["symbol"]}
    assert (by_symbol["BTC/USDT"]["count"], D(by_symbol["BTC/USDT"]["net_pnl"])) == (1, D("91.9"))
    assert (by_symbol["ETH/USDT"]["count"], D(by_symbol["ETH/USDT"]["net_pnl"])) == (1, D("-103.9"))
    assert [row["name"] for row in r["breakdowns"]["exit_reason"]] == ["manual"]
    assert r["breakdowns"]["strategy"][0]["average_holding_seconds"] == (2 * 24 + 11) * 3600  # trend
    assert r["trades"]["payoff_ratio"] == pytest.approx(91.9 / 103.9) and r["trades"]["breakevens"] == 0
    assert r["undefined"]["trailing_returns.1m"].startswith("the range starts after")
    assert r["trailing_returns"]["inception"] == pytest.approx(r["metrics"]["total_return"])
    worst = r["drawdowns"][0]
    assert worst["depth"] == pytest.approx(r["metrics"]["max_drawdown"])
    assert {"value_at_risk", "conditional_value_at_risk", "skew", "kurtosis"} <= set(r["metrics"])
    # Held from the first trade's opening (01:00 of the range's first day) to the end: trade 3 is open.
    start, end = (datetime.fromisoformat(r["range"][k].replace("Z", "+00:00")) for k in ("start", "end"))
    assert r["exposure_time"] == pytest.approx((end - start - timedelta(hours=1)) / (end - start))

    rows = list(csv.reader(io.StringIO(traded("report", "--csv").stdout)))
    cells = {(s, n): v for s, n, v, _ in rows[1:]}
    assert cells[("trades by symbol: BTC/USDT", "net_pnl")] == by_symbol["BTC/USDT"]["net_pnl"]
    assert float(cells[("drawdown 1", "depth")]) == worst["depth"]
    assert float(cells[("trades", "exposure_time")]) == r["exposure_time"]
    assert float(cells[("trailing return", "inception")]) == r["trailing_returns"]["inception"]
    best_day = r["periods"]["day"]["best"]
    assert float(cells[("best day", best_day["period"])]) == best_day["return"]
    flows = [row for row in rows if row[0] == "cash flow"]
    assert [(row[2], row[3]) for row in flows] == [(f["amount"], f["kind"]) for f in r["cash_flows"]]
    assert [row[2] for row in rows if row[0] == "note"] == r["notes"]


def test_the_new_tables_fit_80_columns_without_cutting_a_number(traded, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COLUMNS", "80")
    out = traded("report").stdout
    for heading in ("Trailing returns", "Deepest drawdowns", "Closed trades by symbol", "by exit reason"):
        assert heading in out
    assert not re.search(r"\S…", out)
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "91.90" in out and "-103.90" in out  # the breakdown's net PnL, whole
    assert "CVaR 95 % (one day)" in out and "excess kurtosis" in out


def test_charts_tell_their_series_apart_without_colour(traded, monkeypatch):  # noqa: F811
    monkeypatch.setenv("NO_COLOR", "1")
    out = traded("report").stdout
    legend = [line for line in out.splitlines() if "buy & hold" in line and "•" in line]
    assert legend, "the benchmark's line has its own marker in the legend"


def test_pandas_stays_out_of_the_commands_that_do_not_need_it():
    import subprocess
    import sys

    probe = "import sys, portfolio_cli.cli.commands, portfolio_cli.services.trading; print('pandas' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "False"
