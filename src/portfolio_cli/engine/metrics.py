"""Performance metrics over daily equity and closed trades (DESIGN §3). Pure functions, floats inside.

Conventions: daily, time-weighted returns ``r_i = (E_i − F_i) / E_{i−1} − 1`` (``F_i`` the deposits
minus withdrawals since the previous day, see ``engine.history``); the first day has no return; 365
periods a year; the sample standard deviation (n − 1); a risk-free rate ``rf`` a year, ``rf/365`` a
day. An undefined metric is ``None``, never 0.

- total return ``TR = Π (1 + r_i) − 1``
- CAGR ``(1 + TR)^(365 / D) − 1``, ``D`` the days from the first to the last day
- annualized volatility ``σ = stdev(r) · √365``
- Sharpe ``(mean(r) − rf/365) / stdev(r) · √365``
- Sortino ``(mean(r) − rf/365) / DD · √365``, downside deviation ``DD = √(Σ min(0, r_i − rf/365)² / N)``
  over all ``N`` days, not the losing days only
- drawdown ``I_i / max_{j≤i} I_j − 1`` on the growth index ``I`` (``I = 1`` on the first day); max
  drawdown is its minimum, current drawdown its last value; the amount is that fraction of the equity
  at the peak it fell from
- Calmar ``CAGR / |max drawdown|``; recovery factor ``TR / |max drawdown|``
- money-weighted return: the annual rate ``x`` with ``Σ c_k / (1 + x)^(t_k / 365) = 0`` over deposits
  (``c < 0``), withdrawals (``c > 0``) and the final equity (``c > 0``), ``t_k`` in days (XIRR)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from portfolio_cli.engine.history import period_return

PERIODS = 365


@dataclass(frozen=True)
class DailyEquity:
    day: date
    equity: Decimal
    net_flow: Decimal  # deposits − withdrawals since the previous day (0 on the first day)


def daily_returns(days: Sequence[DailyEquity]) -> list[float | None]:
    """One return per day after the first; None where the previous equity was not positive."""
    return [period_return(b.equity, a.equity, a.net_flow) for b, a in zip(days, days[1:], strict=False)]


def total_return(returns: Sequence[float]) -> float | None:
    if not returns:
        return None
    growth = 1.0
    for r in returns:
        growth *= 1 + r
    return growth - 1


def cagr(total: float | None, days: int) -> float | None:
    if total is None or days <= 0 or total <= -1:
        return None
    return (1 + total) ** (PERIODS / days) - 1


def volatility(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    return statistics.stdev(returns) * math.sqrt(PERIODS)


def sharpe(returns: Sequence[float], risk_free: float = 0.0) -> float | None:
    if len(returns) < 2:
        return None
    deviation = statistics.stdev(returns)
    if deviation == 0:
        return None
    return (statistics.fmean(returns) - risk_free / PERIODS) / deviation * math.sqrt(PERIODS)


def sortino(returns: Sequence[float], risk_free: float = 0.0) -> float | None:
    if len(returns) < 2:
        return None
    target = risk_free / PERIODS
    downside = math.sqrt(sum(min(0.0, r - target) ** 2 for r in returns) / len(returns))
    if downside == 0:
        return None
    return (statistics.fmean(returns) - target) / downside * math.sqrt(PERIODS)


@dataclass(frozen=True)
class Drawdowns:
    max_pct: float  # ≤ 0
    max_amount: float  # USDT, ≥ 0
    current_pct: float
    days_since_peak: int
    longest_days: int  # the longest time below a previous peak (to the end, if not recovered)


def drawdowns(days: Sequence[DailyEquity], returns: Sequence[float | None]) -> Drawdowns | None:
    """Drawdowns of the growth index over ``days`` (``returns[i]`` leads to ``days[i + 1]``; an
    undefined return leaves the index unchanged)."""
    if not days:
        return None
    index = peak = 1.0
    peak_day, peak_equity = days[0].day, float(days[0].equity)
    worst, worst_amount, longest = 0.0, 0.0, 0
    below = False
    for day, r in zip(days[1:], returns, strict=True):
        index *= 1 + (r or 0.0)
        if index < peak or below:  # in a drawdown, or the day it ends: it has lasted since the peak
            longest = max(longest, (day.day - peak_day).days)
        below = index < peak
        if not below:
            peak, peak_day, peak_equity = index, day.day, float(day.equity)
            continue
        drawdown = index / peak - 1
        if drawdown < worst:
            worst, worst_amount = drawdown, -drawdown * peak_equity
    return Drawdowns(worst, worst_amount, index / peak - 1, (days[-1].day - peak_day).days, longest)


def ratio(numerator: float | None, drawdown: float | None) -> float | None:
    """Calmar (CAGR over |max drawdown|) and the recovery factor (total return over it)."""
    if numerator is None or not drawdown:
        return None
    return numerator / abs(drawdown)


def xirr(flows: Sequence[tuple[datetime, float]]) -> float | None:
    """The annual rate that discounts ``flows`` (negative: money put in) to zero; None when the flows
    do not change sign or no rate between −99.99 % and +10⁶ % solves it. Bisection: the present value
    falls as the rate rises when money goes in before it comes out."""
    if not flows or all(c >= 0 for _, c in flows) or all(c <= 0 for _, c in flows):
        return None
    start = min(t for t, _ in flows)
    years = [((t - start).total_seconds() / 86400 / PERIODS, c) for t, c in flows]

    def present_value(rate: float) -> float:
        return sum(c / (1 + rate) ** y for y, c in years)

    low, high = -0.9999, 10_000.0
    f_low, f_high = present_value(low), present_value(high)
    if f_low * f_high > 0:
        return None
    for _ in range(200):
        mid = (low + high) / 2
        f_mid = present_value(mid)
        if f_mid == 0 or high - low < 1e-12:
            return mid
        if (f_mid > 0) == (f_low > 0):
            low, f_low = mid, f_mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class ClosedTrade:
    net_pnl: Decimal  # gross − entry fee share − exit fees
    opened_at: datetime
    closed_at: datetime


@dataclass(frozen=True)
class TradeStats:
    count: int
    wins: int
    losses: int
    win_rate: float | None  # wins / count; a breakeven trade is neither
    average_win: Decimal | None
    average_loss: Decimal | None
    profit_factor: float | None  # Σ wins / |Σ losses|
    expectancy: Decimal | None  # mean net PnL
    largest_win: Decimal | None
    largest_loss: Decimal | None
    current_wins: int
    current_losses: int
    max_consecutive_wins: int
    max_consecutive_losses: int
    average_duration: timedelta | None


def trade_stats(trades: Sequence[ClosedTrade]) -> TradeStats:
    """Statistics of closed trades in closing order, on net PnL. A breakeven trade ends both streaks."""
    ordered = sorted(trades, key=lambda t: t.closed_at)
    wins = [t.net_pnl for t in ordered if t.net_pnl > 0]
    losses = [t.net_pnl for t in ordered if t.net_pnl < 0]
    streak_wins = streak_losses = most_wins = most_losses = 0
    for t in ordered:
        streak_wins = streak_wins + 1 if t.net_pnl > 0 else 0
        streak_losses = streak_losses + 1 if t.net_pnl < 0 else 0
        most_wins, most_losses = max(most_wins, streak_wins), max(most_losses, streak_losses)
    count = len(ordered)
    lost = -sum(losses, Decimal(0))
    durations = [t.closed_at - t.opened_at for t in ordered]
    return TradeStats(
        count=count,
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / count if count else None,
        average_win=sum(wins, Decimal(0)) / len(wins) if wins else None,
        average_loss=sum(losses, Decimal(0)) / len(losses) if losses else None,
        profit_factor=float(sum(wins, Decimal(0)) / lost) if lost else None,
        expectancy=sum((t.net_pnl for t in ordered), Decimal(0)) / count if count else None,
        largest_win=max(wins) if wins else None,
        largest_loss=min(losses) if losses else None,
        current_wins=streak_wins,
        current_losses=streak_losses,
        max_consecutive_wins=most_wins,
        max_consecutive_losses=most_losses,
        average_duration=sum(durations, timedelta()) / count if count else None,
    )
