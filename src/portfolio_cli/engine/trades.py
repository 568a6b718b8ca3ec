"""Closed-trade statistics and PnL attribution (DESIGN §3: wins and losses use net PnL).

- A trade is closed once closes cover its whole quantity; it counts in the range holding its last close.
- Its net PnL is its realized PnL less every fee it paid (entry share, exits, liquidation); funding is
  reported beside it, not in it.
- Win rate ``wins / trades``; a breakeven trade (net 0) is neither a win nor a loss and ends both
  streaks (``breakevens`` counts them). Profit factor ``Σ wins / |Σ losses|``; expectancy
  ``Σ net / trades``; payoff ratio ``average win / |average loss|``.
- Exposure time: the share of the range during which at least one position was open, the union of
  the trades' holding spans (opening to last close) clipped to the range, over the range's length.
- Breakdowns group the closed trades by symbol, strategy, side and exit reason (the reason of the
  close that closed the trade: manual, stop_loss, take_profit, liquidation, margin_call), each with
  its count, win rate, net PnL, profit factor and average holding time (open to last close).
- Attribution: a trade's part of the range's PnL is every flow it booked in the range (fees,
  realized PnL, funding) plus the change of its unrealized PnL between the first and last snapshot,
  so the parts add up to the portfolio's PnL exactly.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import NamedTuple

from portfolio_cli.engine.metrics import Undefined
from portfolio_cli.engine.records import ClosedTrade, TradePart
from portfolio_cli.money import ZERO

NO_TRADES = Undefined("no closed trades in the range")


@dataclass(frozen=True)
class TradeStats:
    count: int
    wins: int
    losses: int
    win_rate: float | Undefined  # wins / count
    average_win: Decimal | Undefined
    average_loss: Decimal | Undefined
    profit_factor: float | Undefined  # Σ wins / |Σ losses|
    payoff_ratio: float | Undefined  # average win / |average loss|
    breakevens: int  # trades with a net PnL of exactly 0
    expectancy: Decimal | Undefined  # mean net PnL
    largest_win: Decimal | Undefined
    largest_loss: Decimal | Undefined
    current_wins: int
    current_losses: int
    max_consecutive_wins: int
    max_consecutive_losses: int
    average_duration: timedelta | Undefined


class TradeGroup(NamedTuple):
    """The closed trades of one symbol, strategy, side and exit reason, totalled: the statistics and
    breakdowns are built from these (100,000 trades make a few dozen groups), summed here from a list
    or by the ledger in SQL in exact integer units."""

    symbol: str
    strategy: str | None
    side: str
    exit_reason: str
    trades: int
    wins: int  # net PnL > 0
    losses: int  # net PnL < 0
    net: Decimal  # Σ net PnL (ZERO when the group is empty)
    won: Decimal  # Σ net PnL of the wins (ZERO when none)
    lost: Decimal  # −Σ net PnL of the losses (ZERO when none)
    held: timedelta  # Σ (last close − opening)
    largest_win: Decimal | None
    largest_loss: Decimal | None


class ClosedTotals(NamedTuple):
    """Closed trades as the statistics need them: their groups, and their outcomes in closing order,
    one character each: ``W`` a win, ``L`` a loss, ``0`` a breakeven."""

    groups: list[TradeGroup]
    outcomes: str


_CLOSED_AT = attrgetter("closed_at")


def total_closed(trades: Sequence[ClosedTrade]) -> ClosedTotals:
    """The groups and outcomes of ``trades`` (closing order: by ``closed_at``, ties in list order)."""
    combined: dict[tuple[str, str | None, str, str], list] = {}
    for t in trades:
        key = (t.symbol, t.strategy, t.side, t.exit_reason)
        entry = combined.get(key)
        if entry is None:
            # count, wins, losses, net, won, lost, held, largest win, largest loss
            entry = combined[key] = [0, 0, 0, ZERO, ZERO, ZERO, timedelta(), None, None]
        entry[0] += 1
        pnl = t.net_pnl
        entry[3] += pnl
        if pnl > 0:
            entry[1] += 1
            entry[4] += pnl
            if entry[7] is None or pnl > entry[7]:
                entry[7] = pnl
        elif pnl < 0:
            entry[2] += 1
            entry[5] -= pnl
            if entry[8] is None or pnl < entry[8]:
                entry[8] = pnl
        entry[6] += t.closed_at - t.opened_at
    groups = [TradeGroup(*key, *totals) for key, totals in combined.items()]
    outcomes = "".join("W" if t.net_pnl > 0 else "L" if t.net_pnl < 0 else "0" for t in sorted(trades, key=_CLOSED_AT))
    return ClosedTotals(groups, outcomes)


def trade_stats(trades: Sequence[ClosedTrade]) -> TradeStats:
    """Statistics of closed trades in closing order, on net PnL. A breakeven trade ends both streaks."""
    return stats_of(total_closed(trades))


_RUNS = {"W": re.compile("W+"), "L": re.compile("L+")}


def stats_of(totals: ClosedTotals) -> TradeStats:
    """``TradeStats`` from the totals of the closed trades (see ``trade_stats``)."""
    groups, outcomes = totals.groups, totals.outcomes
    count = sum(g.trades for g in groups)
    wins, losses = sum(g.wins for g in groups), sum(g.losses for g in groups)
    won, lost = sum((g.won for g in groups), ZERO), sum((g.lost for g in groups), ZERO)
    net = sum((g.net for g in groups), ZERO)
    held = sum((g.held for g in groups), timedelta())
    best = [g.largest_win for g in groups if g.largest_win is not None]
    worst = [g.largest_loss for g in groups if g.largest_loss is not None]
    no_wins, no_losses = Undefined("no winning trades"), Undefined("no losing trades")
    return TradeStats(
        count=count,
        wins=wins,
        losses=losses,
        win_rate=wins / count if count else NO_TRADES,
        average_win=won / wins if wins else no_wins,
        average_loss=-lost / losses if losses else no_losses,
        profit_factor=float(won / lost) if lost else no_losses,
        payoff_ratio=(float((won / wins) / (lost / losses)) if wins else no_wins) if losses else no_losses,
        breakevens=count - wins - losses,
        expectancy=net / count if count else NO_TRADES,
        largest_win=max(best) if best else no_wins,
        largest_loss=min(worst) if worst else no_losses,
        current_wins=len(outcomes) - len(outcomes.rstrip("W")),
        current_losses=len(outcomes) - len(outcomes.rstrip("L")),
        max_consecutive_wins=max(map(len, _RUNS["W"].findall(outcomes)), default=0),
        max_consecutive_losses=max(map(len, _RUNS["L"].findall(outcomes)), default=0),
        average_duration=held / count if count else NO_TRADES,
    )


def exposure_time(
    spans: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime
) -> float | Undefined:
    """The fraction of ``[start, end]`` covered by the union of ``spans`` (an open end: still held)."""
    return exposure(held_time(spans, start, end), start, end)


def held_time(spans: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime) -> timedelta:
    """How much of ``[start, end]`` the union of ``spans`` covers (an open end: still held)."""
    clipped = sorted((max(a, start), min(b or end, end)) for a, b in spans)
    covered, reach = timedelta(), start
    for a, b in clipped:
        if b <= reach:
            continue
        covered += b - max(a, reach)
        reach = b
    return covered


def exposure(covered: timedelta, start: datetime, end: datetime) -> float | Undefined:
    """``covered`` (``held_time``) as a fraction of the range ``[start, end]``."""
    if end <= start:
        return Undefined("the range has no length")
    return covered / (end - start)


@dataclass(frozen=True)
class Breakdown:
    """The closed trades of one group: a symbol, a strategy, a side or an exit reason."""

    name: str
    count: int
    win_rate: float  # wins / count
    net_pnl: Decimal
    profit_factor: float | Undefined  # Σ wins / |Σ losses|
    average_holding: timedelta


BREAKDOWN_KEYS = ("symbol", "strategy", "side", "exit_reason")


def breakdowns(trades: Sequence[ClosedTrade]) -> dict[str, list[Breakdown]]:
    """The closed trades grouped by each of ``BREAKDOWN_KEYS`` (see ``breakdowns_of``)."""
    return breakdowns_of(total_closed(trades).groups)


def breakdowns_of(groups: Iterable[TradeGroup]) -> dict[str, list[Breakdown]]:
    """The closed trades grouped by each of ``BREAKDOWN_KEYS`` (an untagged trade's strategy is
    "(untagged)"), each group's rows by net PnL, largest first. Exact sums, added up from the totals
    of each (symbol, strategy, side, exit reason): there are few of those."""
    rows: dict[str, dict[str, list]] = {key: {} for key in BREAKDOWN_KEYS}
    for g in groups:
        for key, name in zip(BREAKDOWN_KEYS, (g.symbol, g.strategy or UNTAGGED, g.side, g.exit_reason), strict=True):
            entry = rows[key].get(name)
            if entry is None:
                rows[key][name] = [g.trades, g.wins, g.won, g.lost, g.held]
            else:
                for i, value in enumerate((g.trades, g.wins, g.won, g.lost, g.held)):
                    entry[i] += value
    return {
        key: sorted(
            (
                Breakdown(
                    name=name,
                    count=count,
                    win_rate=wins / count,
                    net_pnl=won - lost,
                    profit_factor=float(won / lost) if lost else Undefined("no losing trades"),
                    average_holding=held / count,
                )
                for name, (count, wins, won, lost, held) in named.items()
            ),
            key=lambda b: (-b.net_pnl, b.name),
        )
        for key, named in rows.items()
    }


@dataclass(frozen=True)
class Contribution:
    """What one group (a strategy, an asset, a side) made in the range."""

    name: str
    trades: int
    pnl: Decimal


UNTAGGED = "(untagged)"


@dataclass(frozen=True)
class Attribution:
    by_strategy: list[Contribution]
    by_asset: list[Contribution]
    by_side: list[Contribution]


def attribute(parts: Iterable[TradePart], unrealized_change: dict[int, Decimal]) -> Attribution:
    """Each strategy's, asset's and side's PnL in the range: its trades' flows in the range plus the
    change of their unrealized PnL (by trade id), largest first."""
    groups: tuple[dict[str, list], ...] = ({}, {}, {})
    for part in parts:
        pnl = part.flows + unrealized_change.get(part.trade_id, ZERO) if part.trade_id else part.flows
        names = (part.strategy or UNTAGGED, part.symbol.split("/")[0], part.side)
        for group, name in zip(groups, names, strict=True):
            entry = group.setdefault(name, [0, ZERO])
            entry[0] += part.trades
            entry[1] += pnl
    strategy, asset, side = (
        sorted((Contribution(name, count, pnl) for name, (count, pnl) in group.items()), key=lambda c: (-c.pnl, c.name))
        for group in groups
    )
    return Attribution(strategy, asset, side)


def strategy_returns(
    taken_at: Sequence[datetime],
    equity: Sequence[Decimal],
    flows: Iterable[tuple[str | None, datetime, Decimal]],
    unrealized: Sequence[Mapping[str | None, Decimal]],
) -> tuple[dict[str, list[float | None]], dict[str, Decimal]]:
    """Each strategy's share of the portfolio's daily returns, and its PnL over them.

    Between snapshots ``i−1`` and ``i`` a strategy's PnL is the flows its trades booked in between
    (fees, realized PnL, funding) plus the change of their unrealized PnL; its share of the return is
    that PnL over the equity ``E_{i−1}``. The shares add up to the portfolio's time-weighted return
    ``r_i``, because deposits and withdrawals belong to no strategy. Undefined where ``E_{i−1} ≤ 0``."""
    days = len(taken_at)
    pnl: dict[str, list[Decimal]] = {}

    def row(strategy: str | None) -> list[Decimal]:
        return pnl.setdefault(strategy or UNTAGGED, [ZERO] * days)

    for strategy, at, amount in flows:
        i = bisect_left(taken_at, at)  # the first snapshot taken at or after the flow
        if 0 < i < days:
            row(strategy)[i] += amount
    for i in range(1, days):
        for strategy in set(unrealized[i]) | set(unrealized[i - 1]):
            row(strategy)[i] += unrealized[i].get(strategy, ZERO) - unrealized[i - 1].get(strategy, ZERO)
    shares = {
        name: [float(p / equity[i - 1]) if equity[i - 1] > 0 else None for i, p in enumerate(daily) if i]
        for name, daily in pnl.items()
    }
    return shares, {name: sum(daily, ZERO) for name, daily in pnl.items()}
