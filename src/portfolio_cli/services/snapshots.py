"""Daily snapshots, with backfill of the days that were missed.

The snapshot of day D is the equity at the end of D (00:00 UTC of D + 1), valued at each symbol's
daily candle of D, its close; today's is taken at the current quotes and is provisional until the day
ends (see ``engine.history``). Each run values every past day that has no end-of-day snapshot yet —
missed days and days whose snapshot was provisional — then takes today's.

Prices come first, outside the ledger's lock: one batched quote request for today, and each symbol's
daily candles for the days to value (cache first, then the exchange, then cached). Inside one
transaction the records are read again and every snapshot is written, all or nothing.

To value days' ends elsewhere (after a backdated record, say): ``closes_needed`` says which candles a
portfolio's days need, ``fetch_day_closes`` gets them before the transaction, and ``value_day_ends``
values the days inside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.booking import booking
from portfolio_cli.engine.brackets import Brackets
from portfolio_cli.engine.history import RecordsSweep, day_end, day_start, days_to_backfill, snapshot_of
from portfolio_cli.engine.records import Candle, Portfolio, Snapshot
from portfolio_cli.engine.symbols import symbols_to_price
from portfolio_cli.engine.valuation import Mark, value_portfolio
from portfolio_cli.errors import LedgerFailure
from portfolio_cli.prices.book import LAST_FILL, candle_close_marks
from portfolio_cli.services.common import PortfolioRecords, brackets_of, records_of
from portfolio_cli.session import Session

# (what is being done, how many done, out of how many): drives a progress bar on a terminal.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SkippedDay:
    day: date
    unpriced: list[str]  # the symbols with no price for it
    reason: str  # why: offline, the exchange's error, or a price from an earlier day


@dataclass(frozen=True)
class PortfolioSnapshots:
    portfolio: str
    today: Snapshot | None
    backfilled: list[date] = field(default_factory=list)
    skipped: list[SkippedDay] = field(default_factory=list)


@dataclass(frozen=True)
class SnapshotRun:
    day: date
    portfolios: list[PortfolioSnapshots]
    dropped: int  # old snapshots removed by the retention window
    complete: bool  # no day was skipped


@dataclass(frozen=True)
class DayCloses:
    """Daily candles by symbol and day, fetched before the write lock, and why a symbol has none."""

    candles: dict[tuple[str, date], Candle]
    failures: dict[str, str]
    offline: bool


def _open_symbols(lots: list[Lot]) -> set[str]:
    return {lot.trade.symbol for lot in lots if lot.is_open}


def closes_needed(
    records: PortfolioRecords, days: list[date], needed: dict[str, list[date]] | None = None
) -> dict[str, list[date]]:
    """Add to ``needed`` (symbol → days) the daily candles that valuing the ends of ``days`` takes:
    each symbol open at a day's end, and the USDT pair its quote currency converts through."""
    needed = {} if needed is None else needed
    sweep = records.sweep()
    for day in sorted(days):
        for symbol in symbols_to_price(_open_symbols(sweep.at(day_end(day))[0])):
            needed.setdefault(symbol, []).append(day)
    return needed


def fetch_day_closes(session: Session, needed: dict[str, list[date]], progress: Progress | None = None) -> DayCloses:
    """Each symbol's daily candles over the days it is needed: one cache read, and at most one
    (paged) exchange request for what the cache lacks. Reaches the network: call it before a
    transaction begins."""
    candles: dict[tuple[str, date], Candle] = {}
    failures: dict[str, str] = {}
    for done, (symbol, days) in enumerate(sorted(needed.items())):
        if progress:
            progress(f"daily candles {symbol}", done, len(needed))
        series = session.prices.candles(symbol, "1d", day_start(min(days)), day_end(max(days)))
        candles.update({(symbol, c.open_time.date()): c for c in series.candles})
        if series.failure:
            failures[symbol] = series.failure
    if progress and needed:
        progress("daily candles", len(needed), len(needed))
    return DayCloses(candles, failures, session.prices.offline)


def value_day_end(
    portfolio: Portfolio, sweep: RecordsSweep, day: date, closes: DayCloses, brackets: Brackets
) -> Snapshot | SkippedDay:
    """The snapshot of ``day``: the records up to and at its end (00:00 UTC of the next day), valued at
    the close of each open symbol's daily candle of ``day``; the day skipped, naming the symbols, when
    a candle is missing. No I/O."""
    moment = day_end(day)
    lots, flows = sweep.at(moment)
    symbols = symbols_to_price(_open_symbols(lots))
    lacking = [s for s in symbols if (s, day) not in closes.candles]
    if lacking:
        return SkippedDay(day, lacking, _no_candle(lacking, closes.failures, closes.offline))
    marks = candle_close_marks(_open_symbols(lots), {s: closes.candles[s, day] for s in symbols})
    return snapshot_of(portfolio.id, day, moment, True, value_portfolio(flows, lots, marks, brackets))


def value_day_ends(
    session: Session, portfolio: Portfolio, records: PortfolioRecords, days: list[date], closes: DayCloses
) -> tuple[list[Snapshot], list[SkippedDay]]:
    """``value_day_end`` over ``days``: the snapshots to save, and the days that could not be valued."""
    brackets = brackets_of(session.settings.for_portfolio(portfolio.name))
    valued: list[Snapshot] = []
    skipped: list[SkippedDay] = []
    sweep = records.sweep()
    for day in sorted(days):
        result = value_day_end(portfolio, sweep, day, closes, brackets)
        if isinstance(result, SkippedDay):
            skipped.append(result)
        else:
            valued.append(result)
    return valued, skipped


def take_snapshots(
    session: Session, names: list[str] | None, progress: Progress | None = None, rebuild: set[date] | None = None
) -> SnapshotRun:
    """Today's snapshot of each named portfolio (all when ``names`` is None), after backfilling every
    earlier day without one. A day that cannot be priced is reported in ``skipped``, never invented.
    With ``rebuild``, only those days (the ones a backdated record made stale), today's among them
    only if it is one."""
    ledger = session.ledger
    portfolios = [ledger.portfolio(name) for name in names] if names else ledger.portfolios()
    now = session.clock()
    today = now.date()
    window = session.settings.snapshots.window
    if rebuild is None:
        plans = {p.id: days_to_backfill(p.created_at, today, ledger.final_snapshot_days(p), window) for p in portfolios}
    else:  # the days a backdated record made stale
        plans = {p.id: sorted(d for d in rebuild if d < today and d not in ledger.final_snapshot_days(p)) for p in portfolios}

    # Prices, before the lock.
    version = ledger.data_version()
    held = {p.id: records_of(ledger, p) for p in portfolios}
    open_now = set().union(*(_open_symbols(held[p.id].at(now)[0]) for p in portfolios))
    marks, _, why = session.prices.marks_found(open_now) if open_now else ({}, [], "")
    needed: dict[str, list[date]] = {}
    for p in portfolios:
        closes_needed(held[p.id], plans[p.id], needed)
    closes = fetch_day_closes(session, needed, progress)

    results = []
    with ledger.transaction(session.command, now):
        if ledger.data_version() != version:  # another command wrote meanwhile: read again
            held = {p.id: records_of(ledger, p) for p in portfolios}
        written: list[Snapshot] = []
        for p in portfolios:
            records = held[p.id]
            valued, skipped = value_day_ends(session, p, records, plans[p.id], closes)
            written += valued
            backfilled = [s.day for s in valued]
            snapshot = None
            if rebuild is None or today in rebuild:
                snapshot, unpriced, reason = _today(session, p, records, marks, why, now)
                if snapshot is None:
                    skipped.append(SkippedDay(today, unpriced, reason))
                else:
                    written.append(snapshot)
            results.append(PortfolioSnapshots(p.name, snapshot, backfilled, skipped))
        ledger.book(None, booking(snapshots=written))
        dropped = ledger.delete_snapshots_before(today - timedelta(window - 1)) if window and rebuild is None else 0
    return SnapshotRun(today, results, dropped, complete=not any(p.skipped for p in results))


def _today(
    session: Session,
    portfolio: Portfolio,
    records: PortfolioRecords,
    marks: dict[str, Mark],
    why: str,
    now: datetime,
) -> tuple[Snapshot | None, list[str], str]:
    """Today's snapshot at the current prices; None with the reason when a price is missing or is
    from an earlier day (that day's snapshot is then backfilled from candles by a later run)."""
    lots, flows = records.at(now)
    symbols = _open_symbols(lots)
    if symbols - set(marks):
        # Opened by a concurrent command since the prices were fetched: its cached quote, if any
        # (no request inside the lock); without one the day is skipped, named, and taken next run.
        found, _, why = session.prices.marks_found(symbols - set(marks), live=False)
        marks = {**marks, **found}
    lacking = sorted(symbols - set(marks))
    if lacking:
        return None, lacking, f"no price{why}"
    unlisted = sorted(s for s in symbols if s in session.prices.unlisted and marks[s].source == LAST_FILL)
    if unlisted:  # a day's equity is never a guess: a fill price is no market price for a delisted symbol
        return None, unlisted, "not listed on Binance, only its last fill price is known"
    old = sorted(s for s in symbols if marks[s].at < day_start(now.date()))
    if old:
        since = min(marks[s].at for s in old)
        return None, old, f"the last price is from {since:%Y-%m-%d %H:%M} UTC, before today"
    settings = session.settings.for_portfolio(portfolio.name)
    valuation = value_portfolio(flows, lots, {s: marks[s] for s in symbols}, brackets_of(settings))
    return snapshot_of(portfolio.id, now.date(), now, False, valuation), [], ""


def _no_candle(symbols: list[str], failures: dict[str, str], offline: bool) -> str:
    failed = [failures[s] for s in symbols if s in failures]
    return "no daily candle" + (f" ({failed[0]})" if failed else " (offline)" if offline else "")


def rebuild_stale(session: Session, name: str, days: tuple[date, ...]) -> list[SkippedDay]:
    """Once a backdated record is committed: rebuild the snapshots it made stale (fetching first,
    as every snapshot does). A day that cannot be priced stays missing, is named in a warning, and
    is rebuilt by the next ``portfolio snapshot`` (which backfills every missing day)."""
    if not days:
        return []
    try:
        run = take_snapshots(session, [name], rebuild=set(days))
    except LedgerFailure as exc:  # the record is committed: a full disk now must not call it failed
        session.warn(
            f"the snapshots from {days[0]} are stale (a record dated before them was booked) and could not be "
            f"rebuilt: {exc}; the next 'portfolio snapshot' rebuilds them"
        )
        return []
    skipped = [s for p in run.portfolios for s in p.skipped]
    for s in skipped:
        session.warn(
            f"the snapshot of {s.day} is stale (a record dated before it was booked) and could not be "
            f"rebuilt: {s.reason} for {', '.join(s.unpriced)}; the next 'portfolio snapshot' rebuilds it"
        )
    return skipped
