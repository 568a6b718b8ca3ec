"""The metrics engine against hand-checked figures, one convention per test."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from portfolio_cli.engine.metrics import (
    ClosedTrade,
    DailyEquity,
    cagr,
    daily_returns,
    drawdowns,
    ratio,
    sharpe,
    sortino,
    total_return,
    trade_stats,
    volatility,
    xirr,
)


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
    assert volatility([0.01]) is None


def test_sharpe_and_sortino_with_downside_deviation_over_all_days():
    returns = [0.1, -0.1, 0.1, 0.0]
    mean, sd = 0.025, math.sqrt(0.0275 / 3)
    assert sharpe(returns) == pytest.approx(mean / sd * math.sqrt(365))
    downside = math.sqrt(0.01 / 4)  # one losing day, divided by all four days
    assert sortino(returns) == pytest.approx(mean / downside * math.sqrt(365))
    assert sortino([0.01, 0.02]) is None  # no downside: undefined, not infinite
    assert sharpe([0.01, 0.01]) is None


def test_drawdowns_on_the_growth_index():
    dd = drawdowns(DAYS, daily_returns(DAYS))
    assert dd.max_pct == pytest.approx(-0.1)  # 0.99 against the 1.1 peak
    assert dd.max_amount == pytest.approx(110)  # 10 % of the 1,100 peak equity
    assert dd.current_pct == pytest.approx(1.089 / 1.1 - 1)
    assert (dd.days_since_peak, dd.longest_days) == (3, 3)  # the deposit is not a recovery
    assert ratio(0.089, dd.max_pct) == pytest.approx(0.89)
    assert ratio(0.1, 0.0) is None
    recovered = series(("100", "0"), ("90", "0"), ("95", "0"), ("100", "0"), ("101", "0"))
    assert drawdowns(recovered, daily_returns(recovered)).longest_days == 3


def test_money_weighted_return_solves_xirr():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    assert xirr([(t0, -1000.0), (t0 + timedelta(days=365), 1100.0)]) == pytest.approx(0.10, abs=1e-9)
    # 1,000 in, 1,000 more half a year later, 2,200 at a year: r with 1000·(1+r) + 1000·(1+r)^0.5 = 2200.
    rate = xirr([(t0, -1000.0), (t0 + timedelta(days=182.5), -1000.0), (t0 + timedelta(days=365), 2200.0)])
    assert 1000 * (1 + rate) + 1000 * (1 + rate) ** 0.5 == pytest.approx(2200)
    assert xirr([(t0, 1000.0)]) is None


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
    assert empty.win_rate is None and empty.profit_factor is None and empty.count == 0
