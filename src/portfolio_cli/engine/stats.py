"""Daily-return statistics between assets: correlation and beta. Floats: this is metrics maths.

Daily return of a day ``d`` = ``close_d / close_{d−1} − 1``, over days where both assets have a
close for the day and the day before. Correlation is Pearson's r; beta of A to B is
``cov(r_A, r_B) / var(r_B)``. Fewer than ``MIN_POINTS`` common returns, or no variance, gives None.
"""

from __future__ import annotations

import statistics
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


def _paired(a: Mapping[date, float], b: Mapping[date, float]) -> tuple[list[float], list[float]]:
    days = sorted(set(a) & set(b))
    return [a[d] for d in days], [b[d] for d in days]


def correlation(a: Mapping[date, float], b: Mapping[date, float]) -> float | None:
    xs, ys = _paired(a, b)
    if len(xs) < MIN_POINTS:
        return None
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:  # a constant series
        return None


def beta(asset: Mapping[date, float], benchmark: Mapping[date, float]) -> float | None:
    xs, ys = _paired(asset, benchmark)
    if len(xs) < MIN_POINTS:
        return None
    variance = statistics.variance(ys)
    return statistics.covariance(xs, ys) / variance if variance > 0 else None


def correlated_groups(returns: Mapping[str, Mapping[date, float]], threshold: float) -> list[set[str]]:
    """Assets joined whenever their correlation exceeds ``threshold`` (transitively), as sets."""
    assets = sorted(returns)
    parent = {a: a for a in assets}

    def root(a: str) -> str:
        while parent[a] != a:
            a = parent[a]
        return a

    for i, a in enumerate(assets):
        for b in assets[i + 1 :]:
            r = correlation(returns[a], returns[b])
            if r is not None and r > threshold:
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
