"""Daily-return statistics between assets: correlation and beta. Floats: this is metrics maths.

Daily return of a day ``d`` = ``close_d / close_{d−1} − 1``, over days where both assets have a
close for the day and the day before. Correlation is Pearson's r; beta of A to B is
``cov(r_A, r_B) / var(r_B)``. Fewer than ``MIN_POINTS`` common returns, or no variance, gives None.
The series maths is pandas', imported only when a correlation or a beta is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal

MIN_POINTS = 20


def daily_returns(closes: Mapping[date, Decimal]) -> dict[date, float]:
    days = sorted(closes)
    return {
        day: float(closes[day] / closes[prev]) - 1.0
        for prev, day in zip(days, days[1:], strict=False)
        if (day - prev).days == 1 and closes[prev] > 0
    }


def _frame(returns: Mapping[str, Mapping[date, float]]):  # -> pandas.DataFrame
    """One column of daily returns per asset, one row per day (NaN where an asset has none)."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dict(r), dtype="float64") for name, r in returns.items()}).sort_index()


def _constant(frame) -> bool:
    """Whether a column holds one value only: its variance is 0, though pandas' float mean may leave
    a rounding residue of 1e-35 where exact arithmetic gives 0."""
    return bool((frame.nunique() < 2).any())


def _defined(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def correlation(a: Mapping[date, float], b: Mapping[date, float]) -> float | None:
    """Pearson's r over the days both have a return (None: fewer than ``MIN_POINTS``, or constant)."""
    frame = _frame({"a": a, "b": b}).dropna()
    if len(frame) < MIN_POINTS or _constant(frame):
        return None
    return _defined(frame["a"].corr(frame["b"]))


def beta(asset: Mapping[date, float], benchmark: Mapping[date, float]) -> float | None:
    """``cov(r_A, r_B) / var(r_B)`` over the days both have a return (sample moments, n − 1)."""
    frame = _frame({"asset": asset, "benchmark": benchmark}).dropna()
    if len(frame) < MIN_POINTS or frame["benchmark"].nunique() < 2:
        return None
    covariance = frame.cov()
    return float(covariance.loc["asset", "benchmark"] / covariance.loc["benchmark", "benchmark"])


def correlated_groups(returns: Mapping[str, Mapping[date, float]], threshold: float) -> list[set[str]]:
    """Assets joined whenever their correlation exceeds ``threshold`` (transitively), as sets. The
    correlations are pairwise, each over the days both assets have a return."""
    assets = sorted(returns)
    parent = {a: a for a in assets}

    def root(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    frame = _frame({a: returns[a] for a in assets})
    varying = [a for a in assets if frame[a].nunique() >= 2]  # a constant one correlates with nothing
    matrix = frame[varying].corr(min_periods=MIN_POINTS)
    for i, a in enumerate(varying):
        for b in varying[i + 1 :]:
            r = matrix.loc[a, b]
            if not math.isnan(r) and r > threshold:
                parent[root(b)] = root(a)
    groups: dict[str, set[str]] = {}
    for a in assets:
        groups.setdefault(root(a), set()).add(a)
    return list(groups.values())


def group_of(asset: str, groups: Iterable[set[str]]) -> set[str]:
    return next((g for g in groups if asset in g), {asset})


def closes_by_day(candles: Sequence) -> dict[date, Decimal]:
    """Daily closes keyed by UTC date, from candles with ``open_time`` and ``close``."""
    return {c.open_time.date(): c.close for c in candles}
