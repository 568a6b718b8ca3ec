"""The same records entered in any order, with ``check`` and ``snapshot`` run in between at random,
end in the same ledger as entering them in time order (DESIGN §2, time): the same trades, closes,
cash flows (fees, funding, PnL) and snapshots. In-process over a known price path, so hundreds of
histories run in seconds.

The records are deposits, withdrawals, trades — spot, and isolated margin long or short with
stops, take-profits and trailing stops — amendments of those trades' exit levels, and pending limit
and stop-entry orders, dated over the morning before ``NOW``; ``check`` books their stops,
take-profits, trailing stops, liquidations, the 08:00 funding, and fills the orders. Sizes stay well
inside the risk rules and free margin, so no order refuses a record another accepts. An amended
trade opens with no exit levels and cannot be liquidated over the path, so nothing closes it before
its amendment, whatever the order (an amendment of a closed trade is refused by design), and a
margin one is amended after the 08:00 funding (one dated before funding booked on its trade is
refused, also by design). Some records are mistakes: entered (a snapshot perhaps taken meanwhile),
then voided, they leave the ledger as if they had never been entered, which is what the
time-ordered run does with them. The default run tries 200 histories (the time-truth issue asks for
at least that many); ``PORTFOLIO_LONG_TESTS=1`` tries 1,000."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from portfolio_cli.engine.records import MarginMode
from portfolio_cli.ledger import open_ledger
from portfolio_cli.services import amend, orders, portfolios, snapshots, trading, voids
from portfolio_cli.services import check as check_service
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
    kind: str  # deposit, withdrawal, open, order, amend
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
    opened_at: datetime | None = None  # an amendment: the time of the trade it amends (of ``symbol``)
    mistaken: bool = False  # entered, then voided: the time-ordered run never enters it


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


mistakes = st.sampled_from([False, False, False, True])


@st.composite
def an_amended_open(draw) -> list[Record]:
    """A trade with no exit levels that the path cannot liquidate (spot, or BNB's ±8 % at 5x at most),
    and an amendment of it a few minutes to hours later, validated against the price then."""
    symbol = draw(st.sampled_from(["BNB/USDT", "SOL/USDT"]))
    at = draw(st.integers(min_value=1, max_value=8 * 60).map(lambda m: DAY + timedelta(minutes=m)))
    margin = symbol == "BNB/USDT" and draw(st.booleans())
    short = margin and draw(st.booleans())
    leverage = draw(st.integers(2, 5)) if margin else 1
    opened = Record("open", at, symbol=symbol, qty=draw(st.sampled_from([D("0.5"), D("1")])), leverage=leverage,
                    short=short)  # fmt: skip
    # a margin trade is amended after the 08:00 funding: one dated before funding booked on its trade is
    # refused (the funding was paid on the position the old levels left open), so whether it is taken
    # would depend on whether a check had run
    first = max(at + timedelta(minutes=1), DAY + timedelta(hours=8)) if margin else at + timedelta(minutes=1)
    room = int((DAY + timedelta(hours=9) - first).total_seconds() // 60)
    when = first + timedelta(minutes=draw(st.integers(0, room - 1)))
    then, sign = price(symbol, when), -1 if short else 1
    stop = then - sign * draw(st.integers(3, 30)) if draw(st.booleans()) else None
    take = then + sign * draw(st.integers(3, 30)) if draw(st.booleans()) else None
    trail = draw(st.sampled_from([None, D(2), D(5)])) if stop is not None or take is not None else D(3)
    amended = Record("amend", when, symbol=symbol, short=short, stop=stop, take=take, trail=trail, opened_at=at,
                     mistaken=draw(mistakes))  # fmt: skip
    return [opened, amended]


def mistaken(record: st.SearchStrategy[Record]) -> st.SearchStrategy[Record]:
    return st.tuples(record, mistakes).map(lambda pair: replace(pair[0], mistaken=pair[1]))


records = st.lists(
    st.one_of(
        mistaken(an_open()).map(lambda r: [r]),
        an_amended_open(),
        an_order().map(lambda r: [r]),
        mistaken(st.builds(Record, st.just("deposit"), moments, st.integers(10, 1000).map(D))).map(lambda r: [r]),
        mistaken(st.builds(Record, st.just("withdrawal"), moments, st.integers(1, 20).map(D))).map(lambda r: [r]),
    ),
    min_size=1,
    max_size=5,
).map(lambda groups: [r for group in groups for r in group]).filter(lambda rs: _amended_apart(rs))


def _amended_apart(entries: list[Record]) -> bool:
    """No two trades at one moment of one symbol where one is amended: the amendment names its trade."""
    amended = [(r.symbol, r.opened_at) for r in entries if r.kind == "amend"]
    opens = [(r.symbol, r.at) for r in entries if r.kind == "open"]
    return all(opens.count(key) == 1 for key in amended)


def after_their_trades(order: list[Record]) -> list[Record]:
    """``order`` with each amendment moved to just after the trade it amends, if it came before it
    (an amendment names its trade: it cannot be entered first)."""
    out: list[Record] = []
    waiting: list[Record] = []
    for r in order:
        if r.kind == "amend" and not any(_amends(r, o) for o in out):
            waiting.append(r)
            continue
        out.append(r)
        for w in [w for w in waiting if _amends(w, r)]:
            waiting.remove(w)
            out.append(w)
    return out + waiting


def _amends(amendment: Record, r: Record) -> bool:
    return r.kind == "open" and (r.symbol, r.at) == (amendment.symbol, amendment.opened_at) and not r.mistaken


def enter(db: Path, source: PathSource, r: Record) -> str | None:
    """Enter ``r``; returns the record a void takes (``KIND:ID``), for the kinds a void can take."""
    clock = source.clock
    if r.kind == "deposit":
        return f"deposit:{run(db, source, clock, 'deposit', portfolios.deposit, 'fund', r.amount, r.at).id}"
    elif r.kind == "withdrawal":
        return f"withdrawal:{run(db, source, clock, 'withdraw', portfolios.withdraw, 'fund', r.amount, r.at).id}"
    elif r.kind == "amend":
        trade_id = trade_of(db, r.symbol, r.opened_at)
        req = amend.AmendRequest(trade_id, stop_loss=r.stop, take_profit=r.take, trailing_pct=r.trail, at=r.at)
        run(db, source, clock, "amend", amend.amend_trade, "fund", req)
        return f"amendment:{amendment_of(db, trade_id, r.at)}"
    elif r.kind == "order":
        mode = MarginMode.ISOLATED if r.leverage > 1 or r.short else None
        placed = orders.OrderRequest(
            r.symbol, limit=r.limit, stop_entry=r.stop_entry, qty=r.qty, short=r.short, leverage=r.leverage,
            margin_mode=mode, stop_loss=r.stop, trailing_pct=r.trail, at=r.at,
        )  # fmt: skip
        run(db, source, clock, "order", orders.place_order, "fund", placed)
        return None
    else:
        mode = MarginMode.ISOLATED if r.leverage > 1 else None
        req = trading.OpenRequest(
            r.symbol, qty=r.qty, short=r.short, leverage=r.leverage, margin_mode=mode, at=r.at,
            stop_loss=r.stop, take_profit=r.take, trailing_pct=r.trail,
        )
        return f"trade:{run(db, source, clock, 'open', trading.open_trade, 'fund', req).trade_id}"


def trade_of(db: Path, symbol: str, opened_at: datetime | None) -> int:
    """The trade an amendment names: the one opened at ``opened_at`` in ``symbol`` by ``open`` (an
    order may have filled as a trade at the same minute)."""
    ledger = open_ledger(db)
    try:
        p = ledger.portfolio("fund")
        filled = {e.trade_id for e in ledger.order_ends(p)}
        opened = [t for t in ledger.trades(p) if (t.symbol, t.opened_at) == (symbol, opened_at)]
        return next(t.id for t in opened if t.id not in filled)
    finally:
        ledger.close()


def amendment_of(db: Path, trade_id: int, at: datetime) -> int:
    ledger = open_ledger(db)
    try:
        amendments = ledger.amendments(ledger.portfolio("fund"))
        return next(a.id for a in amendments if (a.trade_id, a.at) == (trade_id, at))
    finally:
        ledger.close()


def void(db: Path, source: PathSource, record: str) -> None:
    run(db, source, source.clock, "void", voids.void_record, "fund", record, "entered by mistake")


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
        amendments = ledger.amendments(p)
        return {  # sorted by text: None (no stop, no trade) sorts beside numbers
            "trades": sorted(((*key[t.id], t.fee, t.margin_mode) for t in trades), key=repr),
            "closes": sorted(
                ((key[c.trade_id], c.qty, c.price, c.fee, c.realized_pnl, c.closed_at, c.reason) for c in closes),
                key=repr,
            ),
            "flows": sorted(((f.kind, f.amount, f.at, key.get(f.trade_id or 0)) for f in flows), key=repr),
            "amendments": sorted(
                (
                    (key[a.trade_id], a.at, a.stop_loss, a.take_profit, a.trailing_pct, a.reference, a.removed)
                    for a in amendments
                ),
                key=repr,
            ),
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
    """``init``, then each record with the runs drawn for after it, then a last check and snapshot. A
    mistaken record is voided after it is entered (and the snapshot drawn for it, if any, taken)."""
    source = PathSource(price, lambda: NOW)
    created(db, source)
    for r, after in zip(entries, steps, strict=True):
        entered = enter(db, source, r)
        if r.mistaken:
            if "snapshot" in after:
                snapshot(db, source)
            assert entered is not None
            void(db, source, entered)
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
    order = after_their_trades(data.draw(st.permutations(entries)))
    steps = data.draw(st.lists(runs, min_size=len(entries), max_size=len(entries)))
    kept = sorted((r for r in entries if not r.mistaken), key=lambda r: r.at)
    with tempfile.TemporaryDirectory(dir=MEMORY) as tmp:
        in_time = history(Path(tmp) / "in_time.db", kept, [""] * len(kept))
        shuffled = history(Path(tmp) / "shuffled.db", order, steps)
    assert shuffled == in_time
    event(f"closes booked: {len(in_time['closes'])}")
    event(f"funding booked: {sum(1 for f in in_time['flows'] if f[0].value == 'funding')}")
    event(f"orders filled: {sum(1 for _, end in in_time['orders'] if end and end[0].value == 'filled')}")
    event(f"trailing stops: {sum(1 for c in in_time['closes'] if c[-1].value == 'trailing_stop')}")
    event(f"amendments: {len(in_time['amendments'])}")
    event(f"voids: {sum(1 for r in entries if r.mistaken)}")
