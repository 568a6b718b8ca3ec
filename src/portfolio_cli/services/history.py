"""The snapshots over time: a table by day, week, month, quarter or year, and the daily curve behind the charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from portfolio_cli.engine.history import Every, HistoryRow, history_rows
from portfolio_cli.engine.records import Portfolio, Snapshot
from portfolio_cli.errors import InvalidInput
from portfolio_cli.session import Session

# With no --every: a table that fits a screen (the charts always use every day).
AUTO_DAYS, AUTO_WEEKS = 62, 371


@dataclass(frozen=True)
class History:
    portfolio: str
    every: Every
    since: date | None
    until: date | None
    rows: list[HistoryRow]  # one per period
    daily: list[HistoryRow]  # one per snapshot, for the charts
    backfilled_days: int

    @property
    def total_return_pct(self) -> float | None:
        return self.daily[-1].cumulative_return_pct if len(self.daily) > 1 else None

    @property
    def max_drawdown_pct(self) -> float | None:
        return min(row.drawdown_pct for row in self.daily) if self.daily else None


def range_snapshots(
    session: Session, portfolio: Portfolio, first: date | None, last: date | None, positions: bool = False
) -> list[Snapshot]:
    """The snapshots a range of days ``first … last`` (both included) is measured by: the day before
    ``first``, whose end is where the range starts, and every day up to ``last``."""
    return session.ledger.snapshots(portfolio, first - timedelta(1) if first else None, last, positions)


def history(session: Session, name: str, since: date | None, until: date | None, every: str | None = None) -> History:
    if since and until and since > until:
        raise InvalidInput(f"--from {since} is after --to {until}")
    portfolio = session.ledger.portfolio(name)
    # From the snapshot of the day before --from: the first day's return is measured from its end.
    snapshots = range_snapshots(session, portfolio, since, until)
    shown = [s for s in snapshots if since is None or s.day >= since]
    if every is None:
        every = "day" if len(shown) <= AUTO_DAYS else "week" if len(shown) <= AUTO_WEEKS else "month"
    try:
        period = Every(every)
    except ValueError:
        raise InvalidInput(f"--every must be day, week, month, quarter or year, got {every!r}") from None
    daily = [row for row in history_rows(snapshots) if since is None or row.day >= since]
    rows = (
        daily
        if period is Every.DAY
        else [r for r in history_rows(snapshots, period) if since is None or r.day >= since]
    )
    return History(name, period, since, until, rows, daily, sum(s.backfilled for s in shown))
