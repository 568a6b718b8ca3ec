"""The report's reads of 100,000 trades are one SQL pass in integer units and one fold each; these
tests hold them to a straightforward fold, in Python's decimals, over the records themselves, on
small random ledgers (partial and over-covering closes, every flow kind, untagged and empty-tagged
trades, a second portfolio, legacy and too-large amounts), and check that the report's lookups read
their indexes rather than every cash flow."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from portfolio_cli.engine.records import (
    Close,
    CloseReason,
    ClosedTrade,
    FlowKind,
    Kind,
    MarginMode,
    Portfolio,
    Side,
    Trade,
)
from portfolio_cli.engine.trades import UNTAGGED, breakdowns, trade_stats
from portfolio_cli.ledger import Ledger, codec, open_ledger

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
STRATEGIES = ("trend", "dca", "", None)
TRADE_FLOWS = (FlowKind.FEE, FlowKind.REALIZED_PNL, FlowKind.FUNDING, FlowKind.LIQUIDATION_FEE)


def random_ledger(path: Path, seed: int, odd: str | None = None) -> tuple[Ledger, Portfolio]:
    """Two portfolios of random trades; the first one's is returned. ``odd`` adds one amount of a
    kind the plain integer sum cannot take: "legacy" (``1E-7``, as once written) or "large" (≥ 10
    billion)."""
    rng = random.Random(seed)
    ledger = open_ledger(path)
    minutes = rng.sample(range(1, 20_000), 400)  # distinct moments: closing order has no ties
    moments = iter(sorted(T0 + timedelta(minutes=m, microseconds=rng.randrange(10**6)) for m in minutes))
    with ledger.transaction("test", T0):
        books = [ledger.create_portfolio(name, T0) for name in ("main", "other")]
        for _ in range(60):
            book = rng.choice(books)
            qty = D(rng.randrange(1, 4000)) / 1000
            opened = next(moments)
            short = rng.random() < 0.3
            trade = Trade(
                0, rng.choice(SYMBOLS), Side.SHORT if short else Side.LONG, Kind.MARGIN if short else Kind.SPOT,
                MarginMode.ISOLATED if short else None, 2 if short else 1, qty, D(100), D(100), D("0.1"), opened,
                strategy=rng.choice(STRATEGIES),
            )  # fmt: skip
            trade_id = ledger.add_trade(book, trade, False)
            ledger.add_cash_flow(book, FlowKind.FEE, -D(rng.randrange(1, 10**6)) / 10**8, opened, trade_id)
            left = qty
            for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
                part = rng.choice((left, left / 2, left + D("0.001"), D("0.001")))  # whole, half, over, a sliver
                at = next(moments)
                reason = rng.choice(list(CloseReason))
                ledger.add_close(book, Close(0, trade_id, part, D(101), D(101), D("0.1"), D(0), at, None, reason))
                left -= part
            for _ in range(rng.randrange(5)):
                kind = rng.choice(TRADE_FLOWS)
                ledger.add_cash_flow(book, kind, D(rng.randrange(-10**9, 10**9)) / 10**8, next(moments), trade_id)
        main = books[0]
        ledger.add_cash_flow(main, FlowKind.DEPOSIT, D(10_000), T0)
        first = ledger.conn.execute("select min(id) from trades where portfolio_id = ?", [main.id]).fetchone()[0]
        if odd == "legacy":
            ledger.conn.execute(
                "insert into cash_flows (portfolio_id, kind, amount, at, trade_id) values (?, 'fee', '-1E-7', ?, ?)",
                [main.id, codec.timestamp(T0 + timedelta(days=1)), first],
            )
        elif odd == "large":
            ledger.add_cash_flow(main, FlowKind.REALIZED_PNL, D("12345678901.5"), T0 + timedelta(days=2), first)
    return ledger, main


def folded(ledger: Ledger, book: Portfolio, since: datetime, until: datetime):
    """The closed trades and holding spans of ``(since, until]`` by the definitions, record by record."""
    closes = defaultdict(list)
    for close in ledger.closes(book):
        closes[close.trade_id].append(close)
    net: dict[int, D] = defaultdict(D)
    for flow in ledger.cash_flows(book):
        if flow.trade_id is not None and flow.kind is not FlowKind.FUNDING:
            net[flow.trade_id] += flow.amount
    closed, spans = [], []
    for trade in ledger.trades(book):
        mine = closes[trade.id]
        last = max(mine, key=lambda c: c.closed_at) if mine else None
        covered = bool(mine) and sum(c.qty for c in mine) >= trade.qty
        if covered and since < last.closed_at <= until:
            closed.append(
                ClosedTrade(net[trade.id], trade.opened_at, last.closed_at, trade.strategy, trade.symbol,
                            trade.side.value, last.reason.value)
            )  # fmt: skip
        if trade.opened_at <= until and (last is None or last.closed_at > since):
            spans.append((trade.opened_at, last.closed_at if covered else None))
    return closed, spans


def parts_folded(ledger: Ledger, book: Portfolio, since: datetime, until: datetime, single: set[int]):
    trades = {t.id: t for t in ledger.trades(book)}
    flows: dict[tuple, list] = {}
    for flow in ledger.cash_flows(book):
        if flow.trade_id is None or not since < flow.at <= until:
            continue
        t = trades[flow.trade_id]
        key = (t.strategy, t.symbol, t.side.value, t.id if t.id in single else None)
        entry = flows.setdefault(key, [set(), D(0)])
        entry[0].add(t.id)
        entry[1] += flow.amount
    for trade_id in single - {key[3] for key in flows}:
        t = trades[trade_id]
        flows[(t.strategy, t.symbol, t.side.value, trade_id)] = [{trade_id}, D(0)]
    return sorted(((*key, len(ids), total) for key, (ids, total) in flows.items()), key=str)


WINDOWS = [
    (T0 - timedelta(days=1), T0 + timedelta(days=30)),  # everything
    (T0 + timedelta(days=3), T0 + timedelta(days=9)),
    (T0 + timedelta(days=9), T0 + timedelta(days=9)),  # no length
]


@pytest.mark.parametrize("odd", [None, "legacy", "large"])
@pytest.mark.parametrize("seed", range(12))
def test_closed_trades_and_holding_spans_match_the_fold_of_the_records(tmp_path, seed, odd):
    ledger, book = random_ledger(tmp_path / "ledger.db", seed, odd)
    for since, until in WINDOWS:
        closed, spans = ledger.closed_and_held(book, since, until)
        want_closed, want_spans = folded(ledger, book, since, until)
        assert sorted(closed, key=str) == sorted(want_closed, key=str)
        assert sorted(spans, key=str) == sorted(want_spans, key=str)
        assert ledger.closed_trades(book, since, until) == closed
        single = {t.id for t in ledger.trades(book)[::4]}
        parts = ledger.trade_parts(book, since, until, single)
        got = sorted(((p.strategy, p.symbol, p.side, p.trade_id, p.trades, p.flows) for p in parts), key=str)
        assert got == parts_folded(ledger, book, since, until, single)
    ledger.close()


def naive_breakdowns(trades: list[ClosedTrade]) -> dict[str, list[tuple]]:
    """Each group of each key on its own, straight from the definitions."""
    out = {}
    for key, name_of in {
        "symbol": lambda t: t.symbol,
        "strategy": lambda t: t.strategy or UNTAGGED,
        "side": lambda t: t.side,
        "exit_reason": lambda t: t.exit_reason,
    }.items():
        rows = []
        for name in {name_of(t) for t in trades}:
            group = [t for t in trades if name_of(t) == name]
            won = sum((t.net_pnl for t in group if t.net_pnl > 0), D(0))
            lost = -sum((t.net_pnl for t in group if t.net_pnl < 0), D(0))
            held = sum((t.closed_at - t.opened_at for t in group), timedelta())
            wins = sum(1 for t in group if t.net_pnl > 0)
            rows.append((name, len(group), wins / len(group), won - lost, float(won / lost) if lost else None,
                         held / len(group)))  # fmt: skip
        out[key] = sorted(rows, key=lambda r: (-r[3], r[0]))
    return out


def longest(flags: list[bool]) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_trade_stats_and_breakdowns_match_a_straightforward_fold(tmp_path, seed):
    ledger, book = random_ledger(tmp_path / "ledger.db", seed)
    closed, _ = ledger.closed_and_held(book, *WINDOWS[0])
    ledger.close()
    rng = random.Random(seed)
    closed += [t._replace(net_pnl=D(0)) for t in rng.sample(closed, min(3, len(closed)))]  # breakevens
    rng.shuffle(closed)
    got = {
        key: [(b.name, b.count, b.win_rate, b.net_pnl, b.profit_factor if isinstance(b.profit_factor, float) else None,
               b.average_holding) for b in rows]  # fmt: skip
        for key, rows in breakdowns(closed).items()
    }
    assert got == naive_breakdowns(closed)

    stats = trade_stats(closed)
    ordered = sorted(closed, key=lambda t: t.closed_at)
    nets = [t.net_pnl for t in ordered]
    assert (stats.count, stats.wins, stats.losses) == (len(nets), sum(n > 0 for n in nets), sum(n < 0 for n in nets))
    assert stats.breakevens == sum(n == 0 for n in nets)
    assert stats.max_consecutive_wins == longest([n > 0 for n in nets])
    assert stats.max_consecutive_losses == longest([n < 0 for n in nets])
    trailing = len(nets) - max((i + 1 for i, n in enumerate(nets) if not n > 0), default=0)
    assert stats.current_wins == trailing
    assert stats.average_duration == sum((t.closed_at - t.opened_at for t in ordered), timedelta()) / len(ordered)
    assert stats.expectancy == sum(nets, D(0)) / len(nets)


def test_the_reports_lookups_read_their_indexes_not_every_cash_flow(tmp_path):
    ledger, book = random_ledger(tmp_path / "ledger.db", 0)
    plans = {
        "latest flow": ("select max(at) from live_cash_flows where portfolio_id = ?", [book.id]),
        "transfers": (
            "select * from live_cash_flows where portfolio_id = ? and kind in ('deposit', 'withdrawal') "
            "and at > ? and at <= ? order by at, id",
            [book.id, "", "9999"],
        ),
        "odd amounts": (
            f"select 1 from cash_flows where portfolio_id = ? and {codec.ODD_AMOUNT_SQL} order by at, id limit 1",
            [book.id],
        ),
    }
    for name, (sql, params) in plans.items():
        plan = " ".join(row[3] for row in ledger.conn.execute(f"explain query plan {sql}", params))
        assert "USING" in plan and "INDEX" in plan, (name, plan)
        assert not plan.startswith("SCAN"), (name, plan)
    ledger.close()
