"""The metrics engine against hand-checked figures, one convention per test."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from portfolio_cli.engine.history import Every
from portfolio_cli.engine.metrics import (
    DailyEquity,
    Undefined,
    alpha_beta,
    buy_and_hold,
    cagr,
    daily_returns,
    drawdowns,
    period_returns,
    ratio,
    rolling_max_drawdown,
    rolling_sharpe,
    sharpe,
    sortino,
    total_return,
    volatility,
    xirr,
)
from portfolio_cli.engine.trades import ClosedTrade, trade_stats


def series(*points: tuple[str, str]) -> list[DailyEquity]:
    start = date(2026, 1, 1)
    return [DailyEquity(start + timedelta(n), D(e), D(f)) for n, (e, f) in enumerate(points)]


# +10 %, −10 %, +10 %, then a 1,000 deposit with no gain.
DAYS = series(("1000", "0"), ("1100", "0"), ("990", "0"), ("1089", "0"), ("2089", "1000"))


def test_returns_start_on_the_second_day_and_exclude_deposits():
    assert daily_returns(DAYS) == [pytest.approx(0.1), pytest.approx(-0.1), pytest.approx(0.1), 0.0]


def test_total_return_cagr_and_volatility_use_365_days_and_the_sample_deviation():
    returns = daily_returns(DAYS)
    assert total_return(returns) == pytest.approx(1.1 * 0.9 * 1.1 - 1)  # 0.089
    assert cagr(total_return(returns), 4) == pytest.approx(1.089 ** (365 / 4) - 1)
    sample = math.sqrt(sum((r - 0.025) ** 2 for r in [0.1, -0.1, 0.1, 0.0]) / 3)  # n − 1
    assert volatility(returns) == pytest.approx(sample * math.sqrt(365))
    assert isinstance(volatility([0.01]), Undefined)


def test_sharpe_and_sortino_with_downside_deviation_over_all_days():
    returns = [0.1, -0.1, 0.1, 0.0]
    mean, sd = 0.025, math.sqrt(0.0275 / 3)
    assert sharpe(returns) == pytest.approx(mean / sd * math.sqrt(365))
    downside = math.sqrt(0.01 / 4)  # one losing day, divided by all four days
    assert sortino(returns) == pytest.approx(mean / downside * math.sqrt(365))
    assert isinstance(sortino([0.01, 0.02]), Undefined)  # no downside: undefined, not infinite
    assert isinstance(sharpe([0.01, 0.01]), Undefined)


def test_drawdowns_on_the_growth_index():
    dd = drawdowns(DAYS, daily_returns(DAYS))
    assert dd.max_frac == pytest.approx(-0.1)  # 0.99 against the 1.1 peak
    assert dd.max_amount == pytest.approx(110)  # 10 % of the 1,100 peak equity
    assert dd.current_frac == pytest.approx(1.089 / 1.1 - 1)
    assert (dd.days_since_peak, dd.longest_days) == (3, 3)  # the deposit is not a recovery
    assert ratio(0.089, dd.max_frac) == pytest.approx(0.89)
    assert isinstance(ratio(0.1, 0.0), Undefined)
    recovered = series(("100", "0"), ("90", "0"), ("95", "0"), ("100", "0"), ("101", "0"))
    assert drawdowns(recovered, daily_returns(recovered)).longest_days == 3


def test_money_weighted_return_solves_xirr():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    assert xirr([(t0, -1000.0), (t0 + timedelta(days=365), 1100.0)]) == pytest.approx(0.10, abs=1e-9)
    # 1,000 in, 1,000 more half a year later, 2,200 at a year: r with 1000·(1+r) + 1000·(1+r)^0.5 = 2200.
    rate = xirr([(t0, -1000.0), (t0 + timedelta(days=182.5), -1000.0), (t0 + timedelta(days=365), 2200.0)])
    assert 1000 * (1 + rate) + 1000 * (1 + rate) ** 0.5 == pytest.approx(2200)
    assert isinstance(xirr([(t0, 1000.0)]), Undefined)


def test_trade_statistics_on_net_pnl_with_breakeven_ending_both_streaks():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pnls = ["10", "5", "0", "-3", "-4", "2"]
    trades = [ClosedTrade(D(p), t0, t0 + timedelta(hours=n + 1)) for n, p in enumerate(pnls)]
    s = trade_stats(trades)
    assert (s.count, s.wins, s.losses) == (6, 3, 2)
    assert s.win_rate == pytest.approx(0.5)
    assert s.average_win == D(17) / 3 and s.average_loss == D("-3.5")
    assert s.profit_factor == pytest.approx(17 / 7)
    assert s.expectancy == D(10) / 6
    assert (s.largest_win, s.largest_loss) == (D(10), D(-4))
    assert (s.max_consecutive_wins, s.max_consecutive_losses) == (2, 2)
    assert (s.current_wins, s.current_losses) == (1, 0)
    assert s.average_duration == timedelta(hours=3.5)
    empty = trade_stats([])
    assert empty.count == 0 and isinstance(empty.win_rate, Undefined) and isinstance(empty.profit_factor, Undefined)


def test_period_returns_chain_the_days_that_end_in_each_period():
    start = date(2026, 1, 30)
    days = [DailyEquity(start + timedelta(n), D(e), D(0)) for n, e in enumerate(["100", "110", "121", "108.9"])]
    returns = daily_returns(days)  # Jan 31 +10 %, Feb 1 +10 %, Feb 2 −10 %
    months = period_returns(days, returns, Every.MONTH)
    assert [p.start for p in months] == [date(2026, 1, 1), date(2026, 2, 1)]
    assert [p.value for p in months] == [pytest.approx(0.10), pytest.approx(1.1 * 0.9 - 1)]
    (quarter,) = period_returns(days, returns, Every.QUARTER)
    assert quarter.start == date(2026, 1, 1) and quarter.value == pytest.approx(1.1 * 1.1 * 0.9 - 1)
    assert [p.value for p in period_returns(days, returns, Every.DAY)] == [pytest.approx(r) for r in returns]


def test_rolling_windows_use_the_trailing_days_only():
    returns = daily_returns(DAYS)  # +10 %, −10 %, +10 %, 0
    rolled = rolling_sharpe(DAYS, returns, window=3)
    assert [d for d, _ in rolled] == [DAYS[3].day, DAYS[4].day]
    assert rolled[0][1] == pytest.approx(sharpe(returns[0:3])) and rolled[1][1] == pytest.approx(sharpe(returns[1:4]))
    drawdown = rolling_max_drawdown(DAYS, returns, window=2)
    assert [(d, pytest.approx(v)) for d, v in drawdown] == [
        (DAYS[2].day, -0.1),  # 1.1 then 0.99
        (DAYS[3].day, -0.1),  # 0.9 below the window's own start
        (DAYS[4].day, 0.0),  # up 10 %, then flat
    ]


def test_buy_and_hold_invests_each_deposit_on_its_day():
    days = series(("1000", "0"), ("1300", "0"), ("1900", "500"))
    held = buy_and_hold(days, [D(10), D(20), D(10)])
    # 100 units at 10; worth 2,000 at 20; the 500 deposit buys 50 more at 10: 150 × 10.
    assert [h.equity for h in held] == [D(1000), D(2000), D(1500)]
    assert daily_returns(held) == [pytest.approx(1.0), pytest.approx((1500 - 500) / 2000 - 1)]


def test_alpha_and_beta_against_the_benchmark():
    benchmark = [0.01, -0.02, 0.03]
    ours = [2 * b + 0.001 for b in benchmark]
    alpha, beta = alpha_beta(ours, benchmark)
    assert beta == pytest.approx(2.0)
    assert alpha == pytest.approx(0.001 * 365)
    assert all(isinstance(v, Undefined) for v in alpha_beta([0.01], [0.02]))


def test_a_risk_free_rate_is_taken_a_365th_a_day():
    returns = [0.1, -0.1, 0.1, 0.0]
    mean, sd = 0.025, math.sqrt(0.0275 / 3)
    assert sharpe(returns, 0.0365) == pytest.approx((mean - 0.0001) / sd * math.sqrt(365))
    downside = math.sqrt(((-0.1 - 0.0001) ** 2 + (0.0 - 0.0001) ** 2) / 4)  # 0 is now below the target
    assert sortino(returns, 0.0365) == pytest.approx((mean - 0.0001) / downside * math.sqrt(365))
