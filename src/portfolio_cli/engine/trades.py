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

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter

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


_CLOSED_AT = attrgetter("closed_at")


def trade_stats(trades: Sequence[ClosedTrade]) -> TradeStats:
    """Statistics of closed trades in closing order, on net PnL. A breakeven trade ends both streaks."""
    ordered = sorted(trades, key=_CLOSED_AT)
    wins, losses = [], []
    streak_wins = streak_losses = most_wins = most_losses = 0
    durations = timedelta()
    for t in ordered:
        pnl = t.net_pnl
        if pnl > 0:
            wins.append(pnl)
            streak_wins, streak_losses = streak_wins + 1, 0
            most_wins = max(most_wins, streak_wins)
        elif pnl < 0:
            losses.append(pnl)
            streak_wins, streak_losses = 0, streak_losses + 1
            most_losses = max(most_losses, streak_losses)
        else:
            streak_wins = streak_losses = 0
        durations += t.closed_at - t.opened_at
    count = len(ordered)
    won, lost = sum(wins, ZERO), -sum(losses, ZERO)
    no_wins, no_losses = Undefined("no winning trades"), Undefined("no losing trades")
    return TradeStats(
        count=count,
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / count if count else NO_TRADES,
        average_win=won / len(wins) if wins else no_wins,
        average_loss=-lost / len(losses) if losses else no_losses,
        profit_factor=float(won / lost) if lost else no_losses,
        payoff_ratio=(float((won / len(wins)) / (lost / len(losses))) if wins else no_wins) if losses else no_losses,
        breakevens=count - len(wins) - len(losses),
        expectancy=sum((t.net_pnl for t in ordered), ZERO) / count if count else NO_TRADES,
        largest_win=max(wins) if wins else no_wins,
        largest_loss=min(losses) if losses else no_losses,
        current_wins=streak_wins,
        current_losses=streak_losses,
        max_consecutive_wins=most_wins,
        max_consecutive_losses=most_losses,
        average_duration=durations / count if count else NO_TRADES,
    )


def exposure_time(
    spans: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime
) -> float | Undefined:
    """The fraction of ``[start, end]`` covered by the union of ``spans`` (an open end: still held)."""
    if end <= start:
        return Undefined("the range has no length")
    clipped = sorted((max(a, start), min(b or end, end)) for a, b in spans)
    covered, reach = timedelta(), start
    for a, b in clipped:
        if b <= reach:
            continue
        covered += b - max(a, reach)
        reach = b
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


def breakdowns(trades: Iterable[ClosedTrade]) -> dict[str, list[Breakdown]]:
    """The closed trades grouped by each of ``BREAKDOWN_KEYS`` (an untagged trade's strategy is
    "(untagged)"), each group's rows by net PnL, largest first. Exact sums, in one pass that adds each
    trade once, to the totals of its (symbol, strategy, side, exit reason): there are few of those,
    so the groups are then added up from them (100,000 trades, four groups each)."""
    combined: dict[tuple[str, str | None, str, str], list] = {}
    for t in trades:
        entry = combined.get((t.symbol, t.strategy, t.side, t.exit_reason))
        if entry is None:
            entry = combined[(t.symbol, t.strategy, t.side, t.exit_reason)] = [0, 0, ZERO, ZERO, timedelta()]
        entry[0] += 1  # count, wins, won, lost, held
        pnl = t.net_pnl
        if pnl > 0:
            entry[1] += 1
            entry[2] += pnl
        elif pnl < 0:
            entry[3] -= pnl
        entry[4] += t.closed_at - t.opened_at
    groups: dict[str, dict[str, list]] = {key: {} for key in BREAKDOWN_KEYS}
    for (symbol, strategy, side, reason), totals in combined.items():
        for key, name in zip(BREAKDOWN_KEYS, (symbol, strategy or UNTAGGED, side, reason), strict=True):
            entry = groups[key].get(name)
            if entry is None:
                groups[key][name] = list(totals)
            else:
                for i, value in enumerate(totals):
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
                for name, (count, wins, won, lost, held) in rows.items()
            ),
            key=lambda b: (-b.net_pnl, b.name),
        )
        for key, rows in groups.items()
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
