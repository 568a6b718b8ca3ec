"""Past states and the daily history (DESIGN §2: any past state is recomputed from the records).

- The state at a moment ``t`` folds only the records dated at or before ``t``: trades opened, closes,
  margin changes and cash flows.
- The snapshot of UTC day ``D`` is the equity at the end of ``D``: at 00:00 UTC of ``D + 1``, with the
  records dated up to and at that moment and the prices of that moment (each symbol's daily candle of
  ``D``, its close). A snapshot taken during ``D`` (today's, by hand or by cron) holds that moment's
  equity and is provisional: the first snapshot run after ``D`` ends replaces it with the day's end.
  So day ``D``'s return covers ``(00:00 D, 00:00 D + 1]`` and every period — week, month, quarter,
  year, a report's ``--from``/``--to`` — chains the returns of the days inside it, measured from the
  snapshot of the day before it starts.
- Time-weighted return between consecutive snapshots ``i−1`` and ``i``:
  ``r_i = (E_i − F_i) / E_{i−1} − 1``, where ``F_i`` is the deposits minus withdrawals booked after
  snapshot ``i−1`` up to snapshot ``i``. Flows count at the end of the period, so a deposit is never a
  return. Undefined when ``E_{i−1} ≤ 0``. The first snapshot of a range has no return.
- Growth index ``I_i = Π (1 + r_j)`` over the range (an undefined return leaves it unchanged);
  cumulative return ``I_i − 1``; drawdown ``I_i / max_{j≤i} I_j − 1``, so deposits never look like a
  recovery and withdrawals never look like a loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from portfolio_cli.choices import Every
from portfolio_cli.engine.accounting import Lot, build_lots
from portfolio_cli.engine.records import CashFlow, Close, FlowKind, MarginChange, Snapshot, SnapshotPosition, Trade
from portfolio_cli.engine.valuation import Mark, Valuation
from portfolio_cli.money import ZERO


def records_at(
    moment: datetime,
    trades: Iterable[Trade],
    closes: Iterable[Close],
    margin_changes: Iterable[MarginChange],
    flows: Iterable[CashFlow],
) -> tuple[list[Lot], list[CashFlow]]:
    """The lots and cash flows as they stood at ``moment`` (records dated after it are left out)."""
    lots = build_lots(
        [t for t in trades if t.opened_at <= moment],
        [c for c in closes if c.closed_at <= moment],
        [m for m in margin_changes if m.at <= moment],
    )
    return lots, [f for f in flows if f.at <= moment]


class RecordsSweep:
    """``records_at`` for moments asked in increasing order (the ends of days, oldest first), each
    record folded in once: valuing every day of a long history costs the records plus the open lots
    of each day, not the records once per day.

    ``at`` returns what valuing the moment reads: the lots open then, each as ``records_at`` builds
    it (its closes and margin changes up to the moment, in the order given), and one cash flow per
    kind holding the sum of that kind's flows up to the moment (wallet balance and every total are
    sums, and the sums of exact amounts are the same in any order). A moment before the last one asked
    starts the sweep again from the first record."""

    def __init__(
        self,
        trades: Sequence[Trade],
        closes: Sequence[Close],
        margin_changes: Sequence[MarginChange],
        flows: Sequence[CashFlow],
    ) -> None:
        # each record with its place in the list given, which orders a lot's closes and changes
        events: list[tuple[datetime, int, int, Trade | Close | MarginChange | CashFlow]] = [
            *((t.opened_at, 0, n, t) for n, t in enumerate(trades)),
            *((c.closed_at, 1, n, c) for n, c in enumerate(closes)),
            *((m.at, 2, n, m) for n, m in enumerate(margin_changes)),
            *((f.at, 3, n, f) for n, f in enumerate(flows)),
        ]
        events.sort(key=lambda event: event[:3])
        self._events = events
        self._restart()

    def _restart(self) -> None:
        self._next = 0
        self._moment: datetime | None = None
        self._trades: dict[int, Trade] = {}
        self._parts: dict[int, tuple[list[tuple[int, Close]], list[tuple[int, MarginChange]]]] = {}
        self._lots: dict[int, Lot] = {}  # open lots, kept until a record of their trade arrives
        self._totals: dict[FlowKind, Decimal] = {}

    def at(self, moment: datetime) -> tuple[list[Lot], list[CashFlow]]:
        if self._moment is not None and moment < self._moment:
            self._restart()
        self._moment = moment
        changed: set[int] = set()
        events = self._events
        while self._next < len(events) and events[self._next][0] <= moment:
            _, _, n, record = events[self._next]
            self._next += 1
            if isinstance(record, Trade):
                self._trades[record.id] = record
                self._parts.setdefault(record.id, ([], []))
                changed.add(record.id)
            elif isinstance(record, CashFlow):
                self._totals[record.kind] = self._totals.get(record.kind, ZERO) + record.amount
            else:  # a close or margin change: its lot is rebuilt once its trade is there
                closes, margin_changes = self._parts.setdefault(record.trade_id, ([], []))
                if isinstance(record, Close):
                    closes.append((n, record))
                else:
                    margin_changes.append((n, record))
                if record.trade_id in self._trades:
                    changed.add(record.trade_id)
        for trade_id in changed:
            closes, margin_changes = self._parts[trade_id]
            lot = Lot(
                self._trades[trade_id],
                tuple(c for _, c in sorted(closes, key=lambda p: p[0])),
                tuple(m for _, m in sorted(margin_changes, key=lambda p: p[0])),
            )
            if lot.is_open:
                self._lots[trade_id] = lot
            else:
                self._lots.pop(trade_id, None)
        lots = [self._lots[trade_id] for trade_id in sorted(self._lots)]
        flows = [CashFlow(0, kind, total, moment) for kind, total in self._totals.items()]
        return lots, flows


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def day_end(day: date) -> datetime:
    """The moment day ``day`` ends, which its snapshot is valued at: 00:00 UTC of the next day."""
    return day_start(day + timedelta(1))


def is_provisional(snapshot: Snapshot) -> bool:
    """Whether ``snapshot`` was taken before its day ended (today's, until the day is over)."""
    return snapshot.taken_at < day_end(snapshot.day)


def first_snapshot_day(created_at: datetime) -> date:
    """The first day whose end the portfolio saw: a portfolio created at 00:00 UTC of ``D`` starts
    from the snapshot of ``D − 1`` (its end is that very moment), so day ``D`` has a return."""
    return (created_at - timedelta(microseconds=1)).date()


def days_to_backfill(created_at: datetime, today: date, final: set[date], keep_days: int | None = None) -> list[date]:
    """Days before ``today`` without a final (end-of-day) snapshot, from the first day whose end the
    portfolio saw (within the retention window of ``keep_days`` days, today included, when one is set)."""
    first = first_snapshot_day(created_at)
    if keep_days is not None:
        first = max(first, today - timedelta(keep_days - 1))
    return [first + timedelta(n) for n in range((today - first).days) if first + timedelta(n) not in final]


def snapshot_of(portfolio_id: int, day: date, taken_at: datetime, backfilled: bool, valuation: Valuation) -> Snapshot:
    v = valuation
    return Snapshot(
        portfolio_id=portfolio_id,
        day=day,
        taken_at=taken_at,
        backfilled=backfilled,
        equity=v.equity,
        wallet_balance=v.wallet_balance,
        free_margin=v.free_margin,
        spot_holdings=v.spot_holdings,
        margin_used=v.margin_used,
        margin_level_pct=v.margin_level_pct,
        unrealized_pnl=v.unrealized_pnl,
        realized_pnl=v.realized_pnl,
        fees=v.fees,
        liquidation_fees=v.liquidation_fees,
        funding=v.funding,
        deposits=v.deposits,
        withdrawals=v.withdrawals,
        positions=tuple(
            SnapshotPosition(
                trade_id=p.trade_id,
                symbol=p.symbol,
                side=p.side,
                kind=p.kind,
                qty=p.qty,
                entry_usdt=p.entry_usdt,
                mark=p.mark,
                mark_usdt=p.mark_usdt,
                price_at=p.price_at,
                price_source=p.price_source,
                value=p.value,
                unrealized_pnl=p.unrealized_pnl,
                margin=p.margin,
            )
            for p in v.positions
            if p.trade_id is not None
        ),
    )


def marks_of(snapshot: Snapshot) -> dict[str, Mark]:
    """The marks a snapshot was valued at, as it recorded them."""
    return {p.symbol: Mark(p.symbol, p.mark, p.mark_usdt, p.price_at, p.price_source) for p in snapshot.positions}


@dataclass(frozen=True)
class HistoryRow:
    """One period, closed by its last snapshot. Money is exact; returns are percentages."""

    day: date
    taken_at: datetime
    backfilled: bool
    equity: Decimal
    net_flows: Decimal  # deposits − withdrawals booked in the period
    pnl: Decimal  # equity change less net flows
    return_pct: float | None
    cumulative_return_pct: float
    drawdown_pct: float


def history_rows(snapshots: Sequence[Snapshot], every: Every = Every.DAY) -> list[HistoryRow]:
    """Snapshots (oldest first) as periods: the last snapshot of each, with the period's flows, PnL and
    chained time-weighted return, and the cumulative return and drawdown at its end."""
    rows: list[HistoryRow] = []
    index = peak = 1.0
    growth: float | None = None  # within the current period
    flows = pnl = ZERO
    for i, snap in enumerate(snapshots):
        if i:
            before = snapshots[i - 1]
            flow = net_deposits(snap) - net_deposits(before)
            r = period_return(before.equity, snap.equity, flow)
            flows += flow
            pnl += snap.equity - before.equity - flow
            if r is not None:
                index *= 1 + r
                growth = (1.0 if growth is None else growth) * (1 + r)
            peak = max(peak, index)
        last_of_period = i + 1 == len(snapshots) or every.period_of(snapshots[i + 1].day) != every.period_of(snap.day)
        if last_of_period:
            rows.append(
                HistoryRow(
                    day=snap.day,
                    taken_at=snap.taken_at,
                    backfilled=snap.backfilled,
                    equity=snap.equity,
                    net_flows=flows,
                    pnl=pnl,
                    return_pct=None if growth is None else (growth - 1) * 100,
                    cumulative_return_pct=(index - 1) * 100,
                    drawdown_pct=(index / peak - 1) * 100,
                )
            )
            growth, flows, pnl = None, ZERO, ZERO
    return rows


def net_deposits(snapshot: Snapshot) -> Decimal:
    return snapshot.deposits - snapshot.withdrawals


def period_return(equity_before: Decimal, equity_after: Decimal, net_flow: Decimal) -> float | None:
    """``(E_after − F) / E_before − 1``; None when ``E_before ≤ 0``."""
    if equity_before <= 0:
        return None
    return float((equity_after - net_flow) / equity_before) - 1
