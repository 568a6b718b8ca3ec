"""The snapshots over time: a table by day, week, month, quarter or year, and the daily curve behind the charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from portfolio_cli.engine.history import Every, HistoryRow, history_rows
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


def history(session: Session, name: str, since: date | None, until: date | None, every: str | None = None) -> History:
    if since and until and since > until:
        raise InvalidInput(f"--from {since} is after --to {until}")
    portfolio = session.ledger.portfolio(name)
    snapshots = session.ledger.snapshots(portfolio, since, until)
    if every is None:
        every = "day" if len(snapshots) <= AUTO_DAYS else "week" if len(snapshots) <= AUTO_WEEKS else "month"
    try:
        period = Every(every)
    except ValueError:
        raise InvalidInput(f"--every must be day, week, month, quarter or year, got {every!r}") from None
    daily = history_rows(snapshots)
    rows = daily if period is Every.DAY else history_rows(snapshots, period)
    return History(name, period, since, until, rows, daily, sum(s.backfilled for s in snapshots))
