"""The same records entered in any order, with ``check`` and ``snapshot`` run in between at random,
end in the same ledger as entering them in time order (DESIGN §2, time): the same trades, closes,
cash flows (fees, funding, PnL) and snapshots. In-process over a known price path, so hundreds of
histories run in seconds.

The records are deposits, withdrawals, trades — spot, and isolated margin long or short with
stops, take-profits and trailing stops — and pending limit and stop-entry orders, dated over the
morning before ``NOW``; ``check`` books their stops, take-profits, trailing stops, liquidations,
the 08:00 funding, and fills the orders. Sizes stay well inside the risk rules and free
margin, so no order refuses a record another accepts. The default run tries 200 histories (the
time-truth issue asks for at least that many); ``PORTFOLIO_LONG_TESTS=1`` tries 1,000."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from portfolio_cli.engine.records import MarginMode
from portfolio_cli.ledger import open_ledger
from portfolio_cli.services import check as check_service
from portfolio_cli.services import orders, portfolios, snapshots, trading
from timeline import PathSource, run

CREATED = datetime(2026, 11, 30, tzinfo=UTC)
DAY = datetime(2026, 12, 1, tzinfo=UTC)
NOW = DAY + timedelta(hours=10)  # the morning's minutes fit one request of minute candles


def price(symbol: str, minute: datetime) -> D:
    """A saw-tooth that climbs 1 a minute and drops back every 97 minutes, ±48 around its base."""
    base = {"BNB/USDT": 600, "SOL/USDT": 150}.get(symbol, 100)
    m = int(minute.timestamp() // 60)
    return D(base + (m * 7) % 97 - 48)


@dataclass(frozen=True)
class Record:
    kind: str  # deposit, withdrawal, open
    at: datetime
    amount: D = D(0)
    symbol: str = ""
    qty: D = D(0)
    leverage: int = 1
    short: bool = False
    stop: D | None = None
    take: D | None = None
    trail: D | None = None
    limit: D | None = None  # an order: a limit at this price, or a stop-entry at ``stop_entry``
    stop_entry: D | None = None


moments = st.integers(min_value=1, max_value=9 * 60 - 1).map(lambda m: DAY + timedelta(minutes=m))


@st.composite
def an_open(draw) -> Record:
    symbol = draw(st.sampled_from(["BNB/USDT", "SOL/USDT"]))
    at = draw(moments)
    fill = price(symbol, at)
    margin = draw(st.booleans())
    short = margin and draw(st.booleans())
    leverage = draw(st.integers(2, 20)) if margin else 1
    sign = -1 if short else 1
    stop = fill - sign * draw(st.integers(5, 40)) if draw(st.booleans()) else None
    take = fill + sign * draw(st.integers(5, 40)) if draw(st.booleans()) else None
    qty = draw(st.sampled_from([D("0.5"), D("1"), D("2")]))
    trail = draw(st.sampled_from([None, D(2), D(5)]))
    return Record("open", at, symbol=symbol, qty=qty, leverage=leverage, short=short, stop=stop, take=take, trail=trail)


@st.composite
def an_order(draw) -> Record:
    """A limit order below (a short: above) the price then, or a stop-entry on the other side."""
    symbol = draw(st.sampled_from(["BNB/USDT", "SOL/USDT"]))
    at = draw(moments)
    then = price(symbol, at)
    short = draw(st.booleans())
    leverage = draw(st.integers(2, 10)) if short or draw(st.booleans()) else 1
    sign = -1 if short else 1
    away = draw(st.integers(1, 30))
    limit = draw(st.booleans())
    level = then - sign * away if limit else then + sign * away
    stop = level - sign * 50 if draw(st.booleans()) else None
    trail = draw(st.sampled_from([None, D(3)]))
    return Record(
        "order", at, symbol=symbol, qty=D(1), leverage=leverage, short=short, stop=stop, trail=trail,
        limit=level if limit else None, stop_entry=None if limit else level,
    )  # fmt: skip


records = st.lists(
    st.one_of(
        an_open(),
        an_order(),
        st.builds(Record, st.just("deposit"), moments, st.integers(10, 1000).map(D)),
        st.builds(Record, st.just("withdrawal"), moments, st.integers(1, 20).map(D)),
    ),
    min_size=1,
    max_size=6,
)


def enter(db: Path, source: PathSource, r: Record) -> None:
    clock = source.clock
    if r.kind == "deposit":
        run(db, source, clock, "deposit", portfolios.deposit, "fund", r.amount, r.at)
    elif r.kind == "withdrawal":
        run(db, source, clock, "withdraw", portfolios.withdraw, "fund", r.amount, r.at)
    elif r.kind == "order":
        mode = MarginMode.ISOLATED if r.leverage > 1 or r.short else None
        placed = orders.OrderRequest(
            r.symbol, limit=r.limit, stop_entry=r.stop_entry, qty=r.qty, short=r.short, leverage=r.leverage,
            margin_mode=mode, stop_loss=r.stop, trailing_pct=r.trail, at=r.at,
        )  # fmt: skip
        run(db, source, clock, "order", orders.place_order, "fund", placed)
    else:
        mode = MarginMode.ISOLATED if r.leverage > 1 else None
        req = trading.OpenRequest(
            r.symbol, qty=r.qty, short=r.short, leverage=r.leverage, margin_mode=mode, at=r.at,
            stop_loss=r.stop, take_profit=r.take, trailing_pct=r.trail,
        )
        run(db, source, clock, "open", trading.open_trade, "fund", req)


def check(db: Path, source: PathSource) -> None:
    run(db, source, source.clock, "check", check_service.run_check, ["fund"])


def snapshot(db: Path, source: PathSource) -> None:
    run(db, source, source.clock, "snapshot", snapshots.take_snapshots, ["fund"])


def ledger_of(db: Path) -> dict:
    """The ledger without its ids (entry order numbers records differently): each trade by what it
    is, each close and flow by its trade's identity."""
    ledger = open_ledger(db)
    try:
        p = ledger.portfolio("fund")
        trades = ledger.trades(p)
        key = {
            t.id: (
                t.symbol, t.side, t.kind, t.leverage, t.qty, t.price, t.opened_at, t.stop_loss, t.take_profit,
                t.trailing_pct,
            )
            for t in trades
        }  # fmt: skip
        closes, flows = ledger.closes(p), ledger.cash_flows(p)
        ends = {e.order_id: e for e in ledger.order_ends(p)}
        return {  # sorted by text: None (no stop, no trade) sorts beside numbers
            "trades": sorted(((*key[t.id], t.fee, t.margin_mode) for t in trades), key=repr),
            "closes": sorted(
                ((key[c.trade_id], c.qty, c.price, c.fee, c.realized_pnl, c.closed_at, c.reason) for c in closes),
                key=repr,
            ),
            "flows": sorted(((f.kind, f.amount, f.at, key.get(f.trade_id or 0)) for f in flows), key=repr),
            "orders": sorted(
                (
                    (
                        (o.symbol, o.side, o.order_type, o.price, o.qty, o.reserved, o.placed_at),
                        (e.status, e.at, key.get(e.trade_id or 0), e.reason) if (e := ends.get(o.id)) else None,
                    )
                    for o in ledger.orders(p)
                ),
                key=repr,
            ),
            "snapshots": [
                (
                    (s.day, s.taken_at, s.backfilled, s.equity, s.wallet_balance, s.free_margin, s.margin_used),
                    (s.unrealized_pnl, s.realized_pnl, s.fees, s.funding, s.deposits, s.withdrawals),
                    sorted(((key[x.trade_id], x.qty, x.mark, x.value, x.margin) for x in s.positions), key=repr),
                )
                for s in ledger.snapshots(p, positions=True)
            ],
        }
    finally:
        ledger.close()


_created: dict[str, bytes] = {}


def created(db: Path, source: PathSource) -> None:
    """``init``: a new ledger with the portfolio, copied from one made once (migrations are slow)."""
    if "ledger" not in _created:
        with tempfile.TemporaryDirectory() as tmp:
            first = Path(tmp) / "first.db"
            run(first, source, source.clock, "init", portfolios.init_portfolio, "fund", D(10_000), CREATED)
            ledger = open_ledger(first)
            ledger.conn.execute("pragma wal_checkpoint(truncate)")
            ledger.close()
            _created["ledger"] = first.read_bytes()
    db.write_bytes(_created["ledger"])


def history(db: Path, entries: list[Record], steps: list[str]) -> dict:
    """``init``, then each record with the runs drawn for after it, then a last check and snapshot."""
    source = PathSource(price, lambda: NOW)
    created(db, source)
    for r, after in zip(entries, steps, strict=True):
        enter(db, source, r)
        if "check" in after:
            check(db, source)
        if "snapshot" in after:
            snapshot(db, source)
    check(db, source)
    snapshot(db, source)
    return ledger_of(db)


# In memory where the system has it: each command commits, and a commit to disk waits for the disk.
MEMORY = "/dev/shm" if Path("/dev/shm").is_dir() else None
runs = st.sampled_from(["", "", "check", "snapshot", "check snapshot"])


EXAMPLES = 1000 if os.environ.get("PORTFOLIO_LONG_TESTS") == "1" else 200


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), entries=records)
def test_records_in_any_order_with_checks_and_snapshots_between_end_in_the_same_ledger(data, entries):
    order = data.draw(st.permutations(entries))
    steps = data.draw(st.lists(runs, min_size=len(entries), max_size=len(entries)))
    with tempfile.TemporaryDirectory(dir=MEMORY) as tmp:
        in_time = history(Path(tmp) / "in_time.db", sorted(entries, key=lambda r: r.at), [""] * len(entries))
        shuffled = history(Path(tmp) / "shuffled.db", list(order), steps)
    assert shuffled == in_time
    event(f"closes booked: {len(in_time['closes'])}")
    event(f"funding booked: {sum(1 for f in in_time['flows'] if f[0].value == 'funding')}")
    event(f"orders filled: {sum(1 for _, end in in_time['orders'] if end and end[0].value == 'filled')}")
    event(f"trailing stops: {sum(1 for c in in_time['closes'] if c[-1].value == 'trailing_stop')}")
