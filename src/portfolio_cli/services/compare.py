"""`portfolio compare`: portfolios, or the strategies inside one, side by side over the same dates.

Portfolios are compared over their common range: from the latest first snapshot to the earliest last
one within the range asked for, each column being that portfolio's own report over it. Strategies
split one portfolio's daily return by the PnL of their trades (``engine.trades.strategy_returns``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

from portfolio_cli.engine.metrics import (
    DailyEquity,
    Performance,
    Undefined,
    daily_returns,
    growth_index,
    performance,
)
from portfolio_cli.engine.records import FlowKind
from portfolio_cli.engine.trades import UNTAGGED, TradeStats, strategy_returns, trade_stats
from portfolio_cli.errors import InvalidInput, NotFound
from portfolio_cli.services.history import range_snapshots
from portfolio_cli.services.report import Benchmark, Report, report, report_range
from portfolio_cli.session import Session

NO_OWN_CASH = Undefined("a strategy has no cash flows or equity of its own")
FEES = (FlowKind.FEE, FlowKind.LIQUIDATION_FEE)


@dataclass(frozen=True)
class Column:
    name: str
    performance: Performance
    total_pnl: Decimal | Undefined
    trades: TradeStats | None  # None for the benchmark
    fees: Decimal | Undefined
    funding: Decimal | Undefined
    growth: list[tuple[date, float]]  # 100 at the start of the range, by time-weighted return


@dataclass(frozen=True)
class Comparison:
    by: str  # "portfolio" or "strategy"
    requested: str
    first_day: date
    last_day: date
    columns: list[Column]
    notes: list[str]


def compare_portfolios(
    session: Session,
    names: list[str],
    since: date | None,
    until: date | None,
    period: str | None,
    benchmark: bool = False,
) -> Comparison:
    if len(set(names)) < len(names):
        raise InvalidInput("a portfolio is named twice")
    if len(names) < (1 if benchmark else 2):
        raise InvalidInput("name two or more portfolios (or one with --benchmark)")
    since, until, requested = report_range(session.clock().date(), since, until, period)
    spans = {}
    for name in names:
        days = [s.day for s in range_snapshots(session, session.ledger.portfolio(name), since, until)]
        if len(days) < 2:
            raise NotFound(f"{name} has fewer than two daily snapshots in the range: run `portfolio snapshot`")
        spans[name] = (days[0], days[-1])
    # The common range starts from the latest first snapshot: its next day is the first return.
    start, last = max(a for a, _ in spans.values()), min(b for _, b in spans.values())
    if start >= last:
        shown = ", ".join(f"{n} {a} to {b}" for n, (a, b) in spans.items())
        raise NotFound(f"the portfolios' snapshots share no range of two days or more ({shown})")
    first = start + timedelta(1)
    reports = [report(session, name, first, last) for name in names]
    columns = [_portfolio_column(r) for r in reports]
    notes = [f"{r.portfolio}: {note}" for r in reports for note in r.notes]
    if benchmark:
        held = reports[0].benchmark
        if isinstance(held, Benchmark):
            columns.append(_benchmark_column(held, reports[0]))
        else:
            notes.append(f"no benchmark column: {held.why}")
    return Comparison("portfolio", requested, first, last, columns, notes)


def _portfolio_column(r: Report) -> Column:
    growth = [(row.day, 100 + row.cumulative_return_pct) for row in r.daily]
    return Column(r.portfolio, r.performance, r.total_pnl, r.trades, r.fees, r.funding, growth)


def _benchmark_column(held: Benchmark, r: Report) -> Column:
    index = growth_index(daily_returns(held.daily))
    growth = [(d.day, 100 * i) for d, i in zip(held.daily, index, strict=True)]
    total = held.daily[-1].equity - held.daily[0].equity - sum((d.net_flow for d in held.daily), Decimal(0))
    name = f"{held.symbol.split('/')[0]} buy & hold ({r.portfolio}'s cash flows)"
    return Column(name, held.performance, total, None, Undefined("no trades"), Undefined("no funding"), growth)


def compare_strategies(
    session: Session, name: str, since: date | None, until: date | None, period: str | None
) -> Comparison:
    """One column per strategy tag of ``name`` (untagged trades together)."""
    since, until, requested = report_range(session.clock().date(), since, until, period)
    ledger = session.ledger
    portfolio = ledger.portfolio(name)
    snapshots = range_snapshots(session, portfolio, since, until, positions=True)
    if len(snapshots) < 2:
        raise NotFound(f"{name} has fewer than two daily snapshots in the range: run `portfolio snapshot`")
    start, end = snapshots[0].taken_at, snapshots[-1].taken_at
    tags = ledger.trade_strategies(portfolio)
    unrealized = []
    for snap in snapshots:
        held: dict[str | None, Decimal] = {}
        for p in snap.positions:
            held[tags.get(p.trade_id)] = held.get(tags.get(p.trade_id), Decimal(0)) + p.unrealized_pnl
        unrealized.append(held)
    flows = ledger.strategy_flows(portfolio, start, end)
    shares, pnl = strategy_returns(
        [s.taken_at for s in snapshots],
        [s.equity for s in snapshots],
        [(strategy, at, amount) for strategy, _, at, amount in flows],
        unrealized,
    )
    closed = ledger.closed_trades(portfolio, start, end)
    risk_free = float(session.settings.report.risk_free_rate)
    columns = []
    for tag in sorted(shares, key=lambda t: (t == UNTAGGED, t)):
        index = growth_index(shares[tag])
        curve = [DailyEquity(s.day, Decimal(repr(i)), Decimal(0)) for s, i in zip(snapshots, index, strict=True)]
        perf = performance(curve, [], start, end, risk_free)
        perf = replace(perf, money_weighted_return=NO_OWN_CASH, max_drawdown_amount=NO_OWN_CASH)
        own = [f for f in flows if (f[0] or UNTAGGED) == tag]
        columns.append(
            Column(
                name=tag,
                performance=perf,
                total_pnl=pnl[tag],
                trades=trade_stats([t for t in closed if (t.strategy or UNTAGGED) == tag]),
                fees=-sum((a for _, kind, _, a in own if kind in FEES), Decimal(0)),
                funding=sum((a for _, kind, _, a in own if kind is FlowKind.FUNDING), Decimal(0)),
                growth=[(s.day, 100 * i) for s, i in zip(snapshots, index, strict=True)],
            )
        )
    return Comparison("strategy", requested, snapshots[0].day + timedelta(1), snapshots[-1].day, columns, [])
