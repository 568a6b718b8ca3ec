"""The snapshots over time: a table by day, week, month, quarter or year, and the daily curve behind the charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from portfolio_cli.engine.history import Every, HistoryRow, day_start, history_rows, snapshot_of
from portfolio_cli.engine.records import Portfolio, Snapshot
from portfolio_cli.engine.valuation import value_portfolio
from portfolio_cli.errors import InvalidInput, PriceUnavailable
from portfolio_cli.services.common import brackets_of, records_of
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
    # With one snapshot in the range and none before it, its row is measured from the range's start
    # valued from the records (as `report` does), not left without a return.
    measured_from: datetime | None = None

    @property
    def total_return_pct(self) -> float | None:
        measured = len(self.daily) > 1 or (self.daily and self.measured_from is not None)
        return self.daily[-1].cumulative_return_pct if measured else None

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
    backfilled = sum(s.backfilled for s in shown)
    if len(snapshots) == 1 and shown:
        start = range_start(portfolio, since)
        try:
            base = valued_at(session, portfolio, start, session.clock())
        except PriceUnavailable:
            base = None  # the start cannot be priced (offline, no candle): the row stands alone
        if base is not None and start < shown[0].taken_at:
            measured = [base, shown[0]]
            daily = history_rows(measured)[-1:]
            return History(name, period, since, until, history_rows(measured, period)[-1:], daily, backfilled, start)
    daily = [row for row in history_rows(snapshots) if since is None or row.day >= since]
    rows = (
        daily
        if period is Every.DAY
        else [r for r in history_rows(snapshots, period) if since is None or r.day >= since]
    )
    return History(name, period, since, until, rows, daily, backfilled)


def range_start(portfolio: Portfolio, since: date | None) -> datetime:
    """Where a range from ``since`` starts when no snapshot marks it: 00:00 UTC of ``since``, or the
    portfolio's creation if later (or with no ``since``)."""
    return max(day_start(since), portfolio.created_at) if since else portfolio.created_at


def valued_at(session: Session, portfolio: Portfolio, moment: datetime, now: datetime) -> Snapshot:
    """The portfolio as it stood at ``moment``, as a snapshot would hold it: the records up to then,
    valued at that moment's prices (now: live, else cached quotes; before: candles)."""
    lots, flows = records_of(session.ledger, portfolio).at(moment)
    symbols = {lot.trade.symbol for lot in lots if lot.is_open}
    marks = session.prices.marks(symbols) if moment >= now else session.prices.marks_at(symbols, moment)
    brackets = brackets_of(session.settings.for_portfolio(portfolio.name))
    return snapshot_of(portfolio.id, moment.date(), moment, False, value_portfolio(flows, lots, marks, brackets))
