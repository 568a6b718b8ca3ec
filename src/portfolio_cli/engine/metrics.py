"""Performance metrics over daily equity (DESIGN §3). Pure functions, floats inside.

Conventions: daily, time-weighted returns ``r_i = (E_i − F_i) / E_{i−1} − 1`` (``F_i`` the deposits
minus withdrawals since the previous day, see ``engine.history``); the first day has no return; 365
periods a year; the sample standard deviation (n − 1); a risk-free rate ``rf`` a year, ``rf/365`` a
day. An undefined metric is an ``Undefined`` carrying the reason, never 0.

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
- a period's return (week, month, …) chains the daily returns that end inside it
- gaps: a return between snapshots more than a day apart (the days between have none) spans several
  days. It counts in the total return, CAGR, drawdowns and the money-weighted return (the growth is
  real), but not in volatility, Sharpe, Sortino, alpha/beta or the best and worst day, which are
  statistics of one-day returns; the days it spans are named (``missing_days``)
- VaR (95 %, historical, one day) the 5 % quantile of the one-day returns, linearly interpolated;
  CVaR the mean of the ``⌊(N − 1) · 0.05⌋ + 1`` lowest (empyrical's conventions); skew and excess
  kurtosis the bias-corrected sample moments (pandas', as quantstats uses them)
- drawdown episodes: each run of days below the running peak, from its peak (the day before) through
  its trough to its recovery (the first day back at or above the peak), see ``Episode``
- trailing returns: ``I_last / I_start − 1`` from the snapshot 1, 3, 6 or 12 calendar months before
  the last day (31 December before, for the year to date)
- the series maths (calendar periods, rolling windows, drawdowns) runs on pandas, imported only
  inside the functions that need it, so a command that does not report never loads it
- beta ``cov(r, b) / var(b)`` against the benchmark's daily returns ``b`` on the same days; alpha
  (Jensen's, annualized) ``(mean(r − rf/365) − beta · mean(b − rf/365)) · 365``
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from portfolio_cli.engine.history import Every, period_return

PERIODS = 365
ROLLING_SHARPE_DAYS = 30
ROLLING_DRAWDOWN_DAYS = 90


@dataclass(frozen=True)
class Undefined:
    """A metric with no value, and why (shown as "n/a"; JSON gives the reason)."""

    why: str


FEW_RETURNS = Undefined("fewer than two daily returns")  # one-day returns, for the daily statistics
FEW_SNAPSHOTS = Undefined("fewer than two daily snapshots")

Value = float | Undefined  # a metric's value, or why it has none


@dataclass(frozen=True)
class DailyEquity:
    day: date
    equity: Decimal
    net_flow: Decimal  # deposits − withdrawals since the previous day (0 on the first day)


def daily_returns(days: Sequence[DailyEquity]) -> list[float | None]:
    """One return per day after the first; None where the previous equity was not positive."""
    return [period_return(b.equity, a.equity, a.net_flow) for b, a in zip(days, days[1:], strict=False)]


def one_day_returns(days: Sequence[DailyEquity], returns: Sequence[float | None]) -> list[float | None]:
    """``returns`` with each one that spans more than a day (across missing days) made None."""
    spans = ((a.day - b.day).days for b, a in zip(days, days[1:], strict=False))
    return [r if span == 1 else None for r, span in zip(returns, spans, strict=True)]


def missing_days(days: Sequence[DailyEquity]) -> list[date]:
    """The days between consecutive snapshots that have none."""
    return [b.day + timedelta(k) for b, a in zip(days, days[1:], strict=False) for k in range(1, (a.day - b.day).days)]


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def stdev(values: Sequence[float]) -> float:
    """The sample standard deviation (n − 1), for two or more values."""
    centre = mean(values)
    return math.sqrt(math.fsum((v - centre) ** 2 for v in values) / (len(values) - 1))


def total_return(returns: Sequence[float]) -> Value:
    if not returns:
        return Undefined("no daily returns")
    return math.prod(1 + r for r in returns) - 1


def cagr(total: Value, days: int) -> Value:
    if isinstance(total, Undefined):
        return total
    if days <= 0:
        return Undefined("the range is shorter than a day")
    if total <= -1:
        return Undefined("the equity was wiped out")
    return (1 + total) ** (PERIODS / days) - 1


def volatility(returns: Sequence[float]) -> Value:
    if len(returns) < 2:
        return FEW_RETURNS
    return stdev(returns) * math.sqrt(PERIODS)


def sharpe(returns: Sequence[float], risk_free: float = 0.0) -> Value:
    if len(returns) < 2:
        return FEW_RETURNS
    deviation = stdev(returns)
    if deviation == 0:
        return Undefined("the daily returns do not vary")
    return (mean(returns) - risk_free / PERIODS) / deviation * math.sqrt(PERIODS)


VAR_CUTOFF = 0.05  # 95 % confidence


def value_at_risk(returns: Sequence[float], cutoff: float = VAR_CUTOFF) -> Value:
    """Historical one-day VaR: the ``cutoff`` quantile of the one-day returns, linearly interpolated
    between order statistics (numpy's and empyrical's ``percentile``); a loss is negative."""
    import pandas as pd

    if len(returns) < 2:
        return FEW_RETURNS
    return float(pd.Series(returns, dtype="float64").quantile(cutoff))


def conditional_value_at_risk(returns: Sequence[float], cutoff: float = VAR_CUTOFF) -> Value:
    """Historical one-day CVaR (expected shortfall): the mean of the ``k + 1`` lowest one-day
    returns, ``k = ⌊(N − 1) · cutoff⌋`` (empyrical's convention)."""
    import pandas as pd

    if len(returns) < 2:
        return FEW_RETURNS
    lowest = int((len(returns) - 1) * cutoff) + 1
    return float(pd.Series(returns, dtype="float64").nsmallest(lowest).mean())


def skew(returns: Sequence[float]) -> Value:
    """Sample skewness (adjusted Fisher–Pearson, pandas' and quantstats'):
    ``G1 = N / ((N − 1)(N − 2)) · Σ ((r − mean) / s)³``, ``s`` the sample deviation."""
    import pandas as pd

    if len(returns) < 3:
        return Undefined("fewer than three daily returns")
    if len(set(returns)) < 2:
        return Undefined("the daily returns do not vary")
    return float(pd.Series(returns, dtype="float64").skew())


def kurtosis(returns: Sequence[float]) -> Value:
    """Sample excess kurtosis (pandas' and quantstats'): ``G2 = N(N + 1) / ((N − 1)(N − 2)(N − 3)) ·
    Σ ((r − mean) / s)⁴ − 3 (N − 1)² / ((N − 2)(N − 3))``; 0 for a normal distribution."""
    import pandas as pd

    if len(returns) < 4:
        return Undefined("fewer than four daily returns")
    if len(set(returns)) < 2:
        return Undefined("the daily returns do not vary")
    return float(pd.Series(returns, dtype="float64").kurt())


def sortino(returns: Sequence[float], risk_free: float = 0.0) -> Value:
    if len(returns) < 2:
        return FEW_RETURNS
    target = risk_free / PERIODS
    downside = math.sqrt(math.fsum(min(0.0, r - target) ** 2 for r in returns) / len(returns))
    if downside == 0:
        return Undefined("no daily return below the risk-free rate")
    return (mean(returns) - target) / downside * math.sqrt(PERIODS)


@dataclass(frozen=True)
class Drawdowns:
    max_frac: float  # ≤ 0
    max_amount: float  # USDT, ≥ 0
    current_frac: float
    days_since_peak: int
    longest_days: int  # the longest time below a previous peak (to the end, if not recovered)


@dataclass(frozen=True)
class Episode:
    """One drawdown: from a peak of the growth index until the index is back at or above it.

    ``depth`` is the trough's ``I / I_peak − 1`` (≤ 0); ``amount`` that fraction of the equity on the
    peak day (USDT); ``recovery`` the first day at or above the peak again (None: not recovered);
    ``length_days`` from the peak to the recovery (to the last day, if not recovered)."""

    peak: date
    trough: date
    recovery: date | None
    depth: float
    amount: float
    days_to_trough: int
    days_to_recover: int | None  # trough to recovery
    length_days: int


def drawdown_series(returns: Sequence[float | None]):  # -> pandas.DataFrame
    """The growth index ``I`` (``I_0 = 1``; an undefined return leaves it unchanged), its running peak
    and the drawdown ``I / peak − 1``, one row per day, as a pandas DataFrame."""
    import pandas as pd

    growth = pd.Series([1.0, *(1 + (r or 0.0) for r in returns)], dtype="float64").cumprod()
    peak = growth.cummax()
    return pd.DataFrame({"index": growth, "peak": peak, "drawdown": growth / peak - 1})


def drawdown_episodes(days: Sequence[DailyEquity], returns: Sequence[float | None]) -> list[Episode]:
    """Every drawdown of the growth index over ``days``, oldest first (``returns[i]`` leads to
    ``days[i + 1]``). An episode is a run of days below the running peak; its peak is the day before
    the run, its trough the run's lowest day (the first, on a tie)."""
    import numpy as np

    if not days:
        return []
    frame = drawdown_series(returns)
    below = (frame["index"] < frame["peak"]).to_numpy()
    depth = frame["drawdown"].to_numpy()
    edges = np.flatnonzero(np.diff(np.concatenate(([0], below.astype(np.int8), [0]))))
    episodes = []
    for start, stop in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):  # below on [start, stop)
        trough = start + int(np.argmin(depth[start:stop]))
        peak_day, trough_day = days[start - 1].day, days[trough].day  # day 0 is never below its own peak
        recovery = days[stop].day if stop < len(days) else None
        episodes.append(
            Episode(
                peak=peak_day,
                trough=trough_day,
                recovery=recovery,
                depth=float(depth[trough]),
                amount=-float(depth[trough]) * float(days[start - 1].equity),
                days_to_trough=(trough_day - peak_day).days,
                days_to_recover=None if recovery is None else (recovery - trough_day).days,
                length_days=((recovery or days[-1].day) - peak_day).days,
            )
        )
    return episodes


def deepest(episodes: Sequence[Episode], count: int = 5) -> list[Episode]:
    """The ``count`` deepest episodes, deepest first (the earlier of two as deep)."""
    return sorted(episodes, key=lambda e: e.depth)[:count]


def drawdowns(days: Sequence[DailyEquity], returns: Sequence[float | None]) -> Drawdowns | Undefined:
    """Drawdowns of the growth index over ``days`` (``returns[i]`` leads to ``days[i + 1]``; an
    undefined return leaves the index unchanged), from its episodes."""
    if not days:
        return Undefined("no daily snapshots")
    episodes = drawdown_episodes(days, returns)
    current = float(drawdown_series(returns)["drawdown"].iloc[-1])
    last = episodes[-1] if episodes and episodes[-1].recovery is None else None
    peak_day = last.peak if last else days[-1].day
    if not episodes:
        return Drawdowns(0.0, 0.0, current, (days[-1].day - peak_day).days, 0)
    worst = min(episodes, key=lambda e: e.depth)
    longest = max(e.length_days for e in episodes)
    return Drawdowns(worst.depth, worst.amount, current, (days[-1].day - peak_day).days, longest)


def ratio(numerator: Value, drawdown: Value) -> Value:
    """Calmar (CAGR over |max drawdown|) and the recovery factor (total return over it)."""
    if isinstance(numerator, Undefined):
        return numerator
    if isinstance(drawdown, Undefined):
        return drawdown
    if drawdown == 0:
        return Undefined("no drawdown in the range")
    return numerator / abs(drawdown)


def xirr(flows: Sequence[tuple[datetime, float]]) -> Value:
    """The annual rate that discounts ``flows`` (negative: money put in) to zero. Bisection: the
    present value falls as the rate rises when money goes in before it comes out."""
    if not flows or all(c >= 0 for _, c in flows) or all(c <= 0 for _, c in flows):
        return Undefined("the cash flows do not change sign")
    start = min(t for t, _ in flows)
    years = [((t - start).total_seconds() / 86400 / PERIODS, c) for t, c in flows]

    def present_value(rate: float) -> float:
        return math.fsum(c / (1 + rate) ** y for y, c in years)

    low, high = -0.9999, 10_000.0
    f_low, f_high = present_value(low), present_value(high)
    if f_low * f_high > 0:
        return Undefined("no rate between -99.99 % and +1,000,000 % a year solves it")
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
class PeriodReturn:
    start: date  # the period's first day (Monday for weeks)
    value: float


def growth_index(returns: Sequence[float | None]) -> list[float]:
    """``I_0 = 1``, ``I_i = I_{i−1} · (1 + r_i)`` (an undefined return leaves it unchanged)."""
    return drawdown_series(returns)["index"].tolist()


# Calendar periods as pandas periods: weeks run Monday to Sunday (ISO weeks), quarters and years by
# the calendar.
PERIOD_FREQ = {Every.DAY: "D", Every.WEEK: "W-SUN", Every.MONTH: "M", Every.QUARTER: "Q", Every.YEAR: "Y"}


def period_returns(days: Sequence[DailyEquity], returns: Sequence[float | None], every: Every) -> list[PeriodReturn]:
    """The chained return of each calendar period holding at least one defined daily return (a return
    across missing days is filed under the day it ends; days leave it out: it is not one day's)."""
    import pandas as pd

    if every is Every.DAY:
        returns = one_day_returns(days, returns)
    growth = pd.Series(
        [math.nan if r is None else 1 + r for r in returns],
        index=pd.DatetimeIndex([d.day for d in days[1:]]),
        dtype="float64",
    ).dropna()
    if growth.empty:
        return []
    chained = growth.groupby(growth.index.to_period(PERIOD_FREQ[every])).prod()
    # The periods' first days at once: one Period at a time costs a 5-year report a tenth of a second.
    starts = chained.index.start_time.date
    return [PeriodReturn(start, g - 1) for start, g in zip(starts, chained.tolist(), strict=True)]


def trailing_start(last: date, months: int) -> date:
    """The day whose snapshot a trailing window of ``months`` calendar months ending on ``last``
    starts from: the same day ``months`` earlier (the month's last day where it is shorter)."""
    import pandas as pd

    return (pd.Timestamp(last) - pd.DateOffset(months=months)).date()


TRAILING_MONTHS = {"1m": 1, "3m": 3, "6m": 6, "1y": 12}


def trailing_returns(days: Sequence[DailyEquity], returns: Sequence[float | None]) -> dict[str, Value]:
    """The return of the last ``N`` months, the year to date and the whole range, each ending on the
    last day: ``I_last / I_start − 1`` on the growth index, ``start`` the snapshot ``N`` calendar
    months before the last day (for the year to date, that of 31 December before). Undefined when the
    range holds no snapshot of that day (it starts later, or the day is missing)."""
    import pandas as pd

    if len(days) < 2:
        return dict.fromkeys((*TRAILING_MONTHS, "ytd", "inception"), FEW_SNAPSHOTS)
    index = pd.Series(growth_index(returns), index=[d.day for d in days])
    last = days[-1].day
    starts = {name: trailing_start(last, months) for name, months in TRAILING_MONTHS.items()}
    starts["ytd"] = date(last.year - 1, 12, 31)
    starts = {name: starts[name] for name in ("1m", "3m", "6m", "ytd", "1y")}
    trailing: dict[str, Value] = {}
    for name, start in starts.items():
        if start < days[0].day:
            trailing[name] = Undefined(f"the range starts after {start}")
        elif start not in index.index:
            trailing[name] = Undefined(f"no snapshot of {start}")
        else:
            trailing[name] = float(index.iloc[-1] / index[start]) - 1
    trailing["inception"] = float(index.iloc[-1]) - 1
    return trailing


def rolling_sharpe(
    days: Sequence[DailyEquity], returns: Sequence[float | None], window: int = ROLLING_SHARPE_DAYS
) -> list[tuple[date, float | None]]:
    """For each day with ``window`` daily returns up to it, the Sharpe ratio of those returns (None
    where one is undefined or they do not vary)."""
    import pandas as pd

    if len(returns) < window:
        return []
    series = pd.Series([math.nan if r is None else r for r in returns], dtype="float64")
    rolled = series.rolling(window)
    deviation = rolled.std()
    ratio = (rolled.mean() / deviation.where(deviation > 0)) * math.sqrt(PERIODS)
    return [
        (days[end + 1].day, None if math.isnan(value) else value)
        for end, value in enumerate(ratio.tolist())
        if end >= window - 1
    ]


def rolling_max_drawdown(
    days: Sequence[DailyEquity], returns: Sequence[float | None], window: int = ROLLING_DRAWDOWN_DAYS
) -> list[tuple[date, float]]:
    """For each day with ``window`` days before it, the max drawdown (≤ 0) within those days: the
    growth index over the ``window + 1`` snapshots, measured from its own peaks inside them."""
    import numpy as np

    if len(days) <= window:
        return []
    index = drawdown_series(returns)["index"]

    def worst(values: np.ndarray) -> float:
        return float((values / np.maximum.accumulate(values)).min() - 1)

    rolled = index.rolling(window + 1).apply(worst, raw=True)
    return [(days[end].day, value) for end, value in enumerate(rolled.tolist()) if end >= window]


def buy_and_hold(days: Sequence[DailyEquity], prices: Sequence[Decimal]) -> list[DailyEquity]:
    """The same money put into one asset bought at ``prices`` (one a day): the first day's equity buys
    it, each later deposit buys more and each withdrawal sells, on its day at that day's price."""
    units = days[0].equity / prices[0]
    held = [DailyEquity(days[0].day, days[0].equity, days[0].net_flow)]
    for day, price in zip(days[1:], prices[1:], strict=True):
        units += day.net_flow / price
        held.append(DailyEquity(day.day, units * price, day.net_flow))
    return held


def alpha_beta(
    returns: Sequence[float | None], benchmark: Sequence[float | None], risk_free: float = 0.0
) -> tuple[Value, Value]:
    """Jensen's alpha (annualized) and beta against the benchmark's returns on the same days."""
    pairs = [(r, b) for r, b in zip(returns, benchmark, strict=True) if r is not None and b is not None]
    if len(pairs) < 2:
        return FEW_RETURNS, FEW_RETURNS
    daily_rf = risk_free / PERIODS
    ours, theirs = [r - daily_rf for r, _ in pairs], [b - daily_rf for _, b in pairs]
    centre_ours, centre_theirs = mean(ours), mean(theirs)
    variance = math.fsum((b - centre_theirs) ** 2 for b in theirs)
    if variance == 0:
        undefined = Undefined("the benchmark's daily returns do not vary")
        return undefined, undefined
    beta = math.fsum((r - centre_ours) * (b - centre_theirs) for r, b in zip(ours, theirs, strict=True)) / variance
    return (centre_ours - beta * centre_theirs) * PERIODS, beta


@dataclass(frozen=True)
class Performance:
    """The equity-curve metrics of one range (fractions: 0.05 is 5 %)."""

    total_return: Value
    cagr: Value
    money_weighted_return: Value
    volatility: Value
    sharpe: Value
    sortino: Value
    value_at_risk: Value  # 95 %, one day, a return (≤ 0 for a loss)
    conditional_value_at_risk: Value
    skew: Value
    kurtosis: Value  # excess
    calmar: Value
    recovery_factor: Value
    max_drawdown: Value
    max_drawdown_amount: Value  # USDT
    current_drawdown: Value
    days_since_peak: int | Undefined
    longest_drawdown_days: int | Undefined


def performance(
    days: Sequence[DailyEquity],
    transfers: Sequence[tuple[datetime, Decimal]],
    start: datetime,
    end: datetime,
    risk_free: float = 0.0,
) -> Performance:
    """Every metric of the daily equity ``days`` taken at ``start`` … ``end``; ``transfers`` are the
    deposits (+) and withdrawals (−) between, for the money-weighted return."""
    returns = daily_returns(days)
    defined = [r for r in returns if r is not None]
    one_day = [r for r in one_day_returns(days, returns) if r is not None]
    total = total_return(defined)
    growth = cagr(total, (days[-1].day - days[0].day).days) if days else Undefined("no daily snapshots")
    if len(days) < 2:
        money_weighted: Value = Undefined("fewer than two daily snapshots")
    else:
        flows = [(start, -float(days[0].equity)), *((t, -float(a)) for t, a in transfers)]
        money_weighted = xirr([*flows, (end, float(days[-1].equity))])
    dd = drawdowns(days, returns)
    max_dd: Value
    amount: Value
    current: Value
    since_peak: int | Undefined
    longest: int | Undefined
    if isinstance(dd, Undefined):
        max_dd = amount = current = since_peak = longest = dd
    else:
        max_dd, amount, current = dd.max_frac, dd.max_amount, dd.current_frac
        since_peak, longest = dd.days_since_peak, dd.longest_days
    return Performance(
        total_return=total,
        cagr=growth,
        money_weighted_return=money_weighted,
        volatility=volatility(one_day),
        sharpe=sharpe(one_day, risk_free),
        sortino=sortino(one_day, risk_free),
        value_at_risk=value_at_risk(one_day),
        conditional_value_at_risk=conditional_value_at_risk(one_day),
        skew=skew(one_day),
        kurtosis=kurtosis(one_day),
        calmar=ratio(growth, max_dd),
        recovery_factor=ratio(total, max_dd),
        max_drawdown=max_dd,
        max_drawdown_amount=amount,
        current_drawdown=current,
        days_since_peak=since_peak,
        longest_drawdown_days=longest,
    )
