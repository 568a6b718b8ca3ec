"""`portfolio report`: the metrics of a range of days and of the trades closed in it.

A range of days ``F … T`` (both included) starts from the snapshot of ``F − 1`` — the equity at the
end of that day, 00:00 UTC of ``F`` — and ends at the snapshot of ``T``, so it holds the daily returns
of ``F`` to ``T`` and equals the calendar period they make up (see ``engine.history``). Returns, PnL,
attribution and trade statistics all cover the records after the first snapshot's moment up to and at
the last one's. Records booked after the last snapshot are not in the report until `portfolio
snapshot` is run again (the report says so).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from portfolio_cli.choices import ReportPeriod
from portfolio_cli.engine.history import (
    Every,
    HistoryRow,
    day_end,
    day_start,
    first_snapshot_day,
    history_rows,
    is_provisional,
    net_deposits,
)
from portfolio_cli.engine.metrics import (
    DailyEquity,
    Episode,
    Performance,
    PeriodReturn,
    Undefined,
    Value,
    alpha_beta,
    buy_and_hold,
    daily_returns,
    deepest,
    drawdown_episodes,
    missing_days,
    one_day_returns,
    performance,
    period_returns,
    rolling_max_drawdown,
    rolling_sharpe,
    trailing_returns,
)
from portfolio_cli.engine.records import CashFlow, FlowKind, Portfolio, Snapshot
from portfolio_cli.engine.trades import (
    Attribution,
    Breakdown,
    TradeStats,
    attribute,
    breakdowns_of,
    exposure,
    stats_of,
)
from portfolio_cli.errors import InvalidInput, PriceUnavailable
from portfolio_cli.services.history import range_snapshots, range_start, valued_at
from portfolio_cli.session import Session

PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}
PERIOD_NAMES = tuple(ReportPeriod)
PERIOD_UNITS = (Every.DAY, Every.WEEK, Every.MONTH, Every.QUARTER, Every.YEAR)


@dataclass(frozen=True)
class Benchmark:
    """The portfolio's own deposits and withdrawals, bought and held in one asset instead."""

    symbol: str
    start_equity: Decimal
    end_equity: Decimal
    performance: Performance
    excess_return: Value  # the portfolio's total return less the benchmark's
    alpha: Value
    beta: Value
    daily: list[DailyEquity]


@dataclass(frozen=True)
class Report:
    portfolio: str
    requested: str  # the range as asked for: "all", "30d", "2026-01-01 to 2026-03-31", …
    first_day: date | None
    last_day: date | None
    start: datetime  # records after this …
    end: datetime  # … up to this are in the report
    snapshots: int
    start_equity: Decimal | None
    end_equity: Decimal | None
    deposits: Decimal
    withdrawals: Decimal
    realized_pnl: Decimal  # gross, of closes in the range
    fees: Decimal  # trading and liquidation fees paid in the range
    funding: Decimal  # received (+) or paid (−)
    unrealized_change: Decimal
    unrealized_pnl: Decimal  # of the positions open at the end
    total_pnl: Decimal  # equity change less deposits and withdrawals
    performance: Performance
    periods: dict[Every, list[PeriodReturn]]
    rolling_sharpe: list[tuple[date, float | None]]
    rolling_max_drawdown: list[tuple[date, float]]
    drawdown_episodes: list[Episode]  # the deepest five, deepest first
    trailing: dict[str, Value]  # "1m", "3m", "6m", "ytd", "1y", "inception"
    trades: TradeStats
    breakdowns: dict[str, list[Breakdown]]  # by "symbol", "strategy", "side", "exit_reason"
    exposure: Value  # the fraction of the range with a position open
    active: bool  # a trade was opened or closed in the range
    attribution: Attribution
    benchmark: Benchmark | Undefined
    transfers: list[CashFlow]
    daily: list[HistoryRow]
    missing_days: list[date]  # days inside the range with no snapshot
    notes: list[str]

    def best_and_worst(self, every: Every) -> tuple[PeriodReturn, PeriodReturn] | None:
        returns = self.periods[every]
        if not returns:
            return None
        return max(returns, key=lambda p: p.value), min(returns, key=lambda p: p.value)


def report_range(
    today: date, since: date | None, until: date | None, period: str | None
) -> tuple[date | None, date | None, str]:
    """The first and last day to report on (both included; None: from the start, to the end), and the
    range's name. A period of N days is the N days to today; ytd starts on 1 January."""
    if period is not None and (since or until):
        raise InvalidInput("give either --period or --from/--to, not both")
    if since and until and since > until:
        raise InvalidInput(f"--from {since} is after --to {until}")
    if period is None:
        if since or until:
            return since, until, f"{since or 'start'} to {until or 'end'}"
        period = "all"
    if period == "all":
        return None, None, "all"
    if period == "ytd":
        return date(today.year, 1, 1), today, "ytd"
    if period not in PERIOD_DAYS:
        raise InvalidInput(f"--period must be one of {', '.join(PERIOD_NAMES)}, got {period!r}")
    return today - timedelta(PERIOD_DAYS[period] - 1), today, period


def report(
    session: Session, name: str, since: date | None = None, until: date | None = None, period: str | None = None
) -> Report:
    _import_meanwhile("pandas")
    now = session.clock()
    since, until, requested = report_range(now.date(), since, until, period)
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    snapshots = range_snapshots(session, portfolio, since, until)
    notes = []
    taken = len(snapshots)
    series = taken >= 2  # a daily series; else the range's ends are valued from the records
    if series:
        first, last = (_with_positions(session, portfolio, s) for s in (snapshots[0], snapshots[-1]))
        start, end = first.taken_at, last.taken_at
        if since is not None and first.day >= since and first_snapshot_day(portfolio.created_at) < since:
            notes.append(
                f"no snapshot of {since - timedelta(1)}, where the range starts: it starts at the end of {first.day}"
            )
    else:
        # Too few snapshots for a daily series: the range starts at the records valued at its start;
        # it ends at its one snapshot (the figures `history` shows for it), else at the records now.
        start = range_start(portfolio, since)
        only = snapshots[0] if taken == 1 and (since is None or snapshots[0].day >= since) else None
        end = only.taken_at if only else max(start, min(now, day_end(until)) if until else now)
        ends = f"the snapshot of {only.day}" if only else f"{end:%Y-%m-%d %H:%M} UTC"
        notes.append(
            f"{taken} daily snapshot(s) in the range: its figures run from the records valued at "
            f"{start:%Y-%m-%d %H:%M} UTC to {ends}; daily statistics need two snapshots (`portfolio snapshot`)"
        )
    provisional = [s.day for s in snapshots if s.day < now.date() and is_provisional(s)]
    if not series:
        first = valued_at(session, portfolio, start, now)
        last = _with_positions(session, portfolio, only) if only else valued_at(session, portfolio, end, now)
        snapshots = [first] if start == end else [first, last]
    if provisional:
        notes.append(
            f"the snapshot(s) of {_days(provisional)} were taken during the day, not at its end: "
            "`portfolio snapshot` values them at the day's end"
        )
    booked = ledger.last_booked_at(portfolio)
    if last is not None and until in (None, now.date()) and booked is not None and booked > last.taken_at:
        notes.append(
            f"records booked after the last snapshot ({last.taken_at:%Y-%m-%d %H:%M} UTC) are not in the report: "
            "`portfolio snapshot` brings it up to now"
        )
    out_of_range = ledger.amounts_out_of_range(portfolio)
    if out_of_range:
        notes.append(
            "amounts of 10 billion USDT or more, likely a mistyped price: " + "; ".join(out_of_range)
        )
    transfers = ledger.transfers(portfolio, start, end)
    # The trades' reads before the series maths, which waits for pandas: they run meanwhile.
    change = _unrealized_change(first, last)
    parts = ledger.trade_parts(portfolio, start, end, single=set(change))
    closed, held = ledger.closed_totals(portfolio, start, end)
    days = [DailyEquity(s.day, s.equity, _net_flow(snapshots, i)) for i, s in enumerate(snapshots)]
    risk_free = float(session.settings.report.risk_free_rate)
    signed = [(f.at, f.amount) for f in transfers]
    perf = performance(days, signed, start, end, risk_free)
    returns = daily_returns(days)
    one_day = one_day_returns(days, returns)
    gaps = missing_days(days) if series else []
    if gaps:
        notes.append(
            f"no snapshot of {_days(gaps)}: the return across them counts in the total return and TWR, "
            "not in volatility, Sharpe, Sortino, alpha/beta or the best and worst day"
        )
    deposits = sum((f.amount for f in transfers if f.kind is FlowKind.DEPOSIT), Decimal(0))
    withdrawals = -sum((f.amount for f in transfers if f.kind is FlowKind.WITHDRAWAL), Decimal(0))
    return Report(
        portfolio=name,
        requested=requested,
        first_day=snapshots[0].day + timedelta(1) if series else since or start.date(),
        last_day=snapshots[-1].day if series else until or end.date(),
        start=start,
        end=end,
        snapshots=taken,
        start_equity=first.equity if first else None,
        end_equity=last.equity if last else None,
        deposits=deposits,
        withdrawals=withdrawals,
        realized_pnl=_change(first, last, lambda s: s.realized_pnl),
        fees=_change(first, last, lambda s: s.fees + s.liquidation_fees),
        funding=_change(first, last, lambda s: s.funding),
        unrealized_change=_change(first, last, lambda s: s.unrealized_pnl),
        unrealized_pnl=last.unrealized_pnl if last else Decimal(0),
        total_pnl=_change(first, last, lambda s: s.equity - net_deposits(s)),
        performance=perf,
        periods={every: period_returns(days, returns, every) if series else [] for every in PERIOD_UNITS},
        rolling_sharpe=rolling_sharpe(days, one_day) if series else [],
        rolling_max_drawdown=rolling_max_drawdown(days, returns) if series else [],
        drawdown_episodes=deepest(drawdown_episodes(days, returns)) if series else [],
        trailing=trailing_returns(days if series else [], returns),
        trades=stats_of(closed),
        breakdowns=breakdowns_of(closed.groups),
        exposure=exposure(held, start, end),
        active=ledger.traded(portfolio, start, end),
        attribution=attribute(parts, change),
        benchmark=(
            _benchmark(session, portfolio, snapshots, days, one_day, signed, start, end, perf, risk_free)
            if series
            else Undefined("fewer than two daily snapshots")
        ),
        transfers=transfers,
        daily=history_rows(snapshots) if series else [],
        missing_days=gaps,
        notes=notes,
    )


def _import_meanwhile(module: str) -> None:
    """Start importing ``module`` (the series maths' pandas, half a second) in a thread while this one
    reads the ledger: SQLite lets go of the interpreter while it runs a query, so on a machine with a
    core to spare the import costs the report no time. The maths imports it as usual and waits for
    this import if it has not finished; a failure is left for that import to raise."""
    import threading
    from importlib import import_module

    def load() -> None:
        with suppress(Exception):
            import_module(module)

    threading.Thread(target=load, name=f"import {module}", daemon=True).start()


def _days(days: list[date]) -> str:
    shown = ", ".join(str(d) for d in days[:5])
    return shown + (f" and {len(days) - 5} more" if len(days) > 5 else "")


def _with_positions(session: Session, portfolio: Portfolio, snapshot: Snapshot) -> Snapshot:
    (full,) = session.ledger.snapshots(portfolio, snapshot.day, snapshot.day, positions=True)
    return full


def _net_flow(snapshots: list[Snapshot], i: int) -> Decimal:
    return net_deposits(snapshots[i]) - net_deposits(snapshots[i - 1]) if i else Decimal(0)


def _change(first: Snapshot | None, last: Snapshot | None, figure) -> Decimal:
    return figure(last) - figure(first) if first and last else Decimal(0)


def _unrealized_change(first: Snapshot | None, last: Snapshot | None) -> dict[int, Decimal]:
    """Each trade's unrealized PnL at the last snapshot less that at the first (0 where not open)."""
    if first is None or last is None:
        return {}
    change = {p.trade_id: p.unrealized_pnl for p in last.positions}
    for p in first.positions:
        change[p.trade_id] = change.get(p.trade_id, Decimal(0)) - p.unrealized_pnl
    return change


def _benchmark(
    session: Session,
    portfolio: Portfolio,
    snapshots: list[Snapshot],
    days: list[DailyEquity],
    returns: list[float | None],
    transfers: list[tuple[datetime, Decimal]],
    start: datetime,
    end: datetime,
    ours: Performance,
    risk_free: float,
) -> Benchmark | Undefined:
    symbol = session.settings.report.benchmark
    if len(days) < 2:
        return Undefined("fewer than two daily snapshots")
    prices = _day_end_prices(session, symbol, days[0].day, days[-1].day)
    for snapshot in snapshots:  # priced at the moment it was taken, before its day ended
        if is_provisional(snapshot):
            prices.pop(snapshot.day, None)
            recorded = _recorded_price(session, portfolio, snapshot, symbol)
            if recorded is not None:
                prices[snapshot.day] = recorded
    missing = [d.day for d in days if d.day not in prices]
    if missing:
        where = "offline" if session.offline else "not cached and not available from the exchange"
        more = f" and {len(missing) - 1} more day(s)" if len(missing) > 1 else ""
        return Undefined(f"no {symbol} daily price for {missing[0]}{more} ({where})")
    held = buy_and_hold(days, [prices[d.day] for d in days])
    theirs = performance(held, transfers, start, end, risk_free)
    alpha, beta = alpha_beta(returns, one_day_returns(held, daily_returns(held)), risk_free)
    excess: Value = (
        ours.total_return - theirs.total_return
        if isinstance(ours.total_return, float) and isinstance(theirs.total_return, float)
        else Undefined("a total return is undefined")
    )
    return Benchmark(symbol, held[0].equity, held[-1].equity, theirs, excess, alpha, beta, held)


def _day_end_prices(session: Session, symbol: str, first: date, last: date) -> dict[date, Decimal]:
    """``symbol``'s price at the end of each day, the moment a day's snapshot is valued at: the daily
    candle's close, else the next day's open (the same moment)."""
    series = session.prices.candles(symbol, "1d", day_start(first), day_end(last + timedelta(1)))
    opens = {c.open_time.date() - timedelta(1): c.open for c in series.candles}
    return opens | {c.open_time.date(): c.close for c in series.candles if c.open_time.date() <= last}


def _recorded_price(session: Session, portfolio: Portfolio, snapshot: Snapshot, symbol: str) -> Decimal | None:
    """The price a provisional snapshot recorded for ``symbol`` (when it held it), else the latest
    price when the snapshot is today's."""
    held = snapshot if snapshot.positions else _with_positions(session, portfolio, snapshot)
    marks = [p.mark for p in held.positions if p.symbol == symbol]
    if marks:
        return marks[0]
    if snapshot.day == session.clock().date():
        with suppress(PriceUnavailable):
            return session.prices.marks([symbol])[symbol].price
    return None
