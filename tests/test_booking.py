"""The one booking path: the engine's entries (hand-computed), ``Ledger.book``, and the guard that
keeps every request to a price source outside the ledger's write transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from portfolio_cli.engine.accounting import Lot
from portfolio_cli.engine.booking import booking, close_entry, close_lots, fill_close, open_entry, transfer_entry
from portfolio_cli.engine.records import CloseReason, FlowKind, Kind, MarginMode, Side, Trade
from portfolio_cli.guard import NetworkInTransaction
from portfolio_cli.services import check as check_service
from portfolio_cli.services import portfolios, snapshots, trading
from timeline import PathSource, run, session_for

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def trade(trade_id: int, qty: str, price: str, side: Side = Side.LONG, at: datetime = T0, fee: str = "1") -> Trade:
    kind = Kind.SPOT if side is Side.LONG else Kind.MARGIN
    mode = None if kind is Kind.SPOT else MarginMode.ISOLATED
    return Trade(trade_id, "BTC/USDT", side, kind, mode, 1 if kind is Kind.SPOT else 2, D(qty), D(price), D(price),
                 D(fee), at)


def test_an_opening_fill_books_its_entry_fee():
    entry = open_entry(trade(0, "0.5", "40000", fee="20"), overridden=["max positions"])
    [fee] = entry.flows
    assert (fee.kind, fee.amount, fee.at, fee.trade_id, fee.note) == (FlowKind.FEE, D(-20), T0, None, "entry fee")
    assert entry.overridden == ("max positions",)


def test_a_close_books_gross_pnl_and_its_fee_a_forced_close_a_liquidation_fee():
    lot = Lot(trade(7, "0.5", "600", Side.SHORT, fee="0.15"), ())
    # short 0.5 at 600 closed at 640: gross −1·0.5·(640 − 600) = −20; fee 0.5 × 640 × 0.0005 = 0.16
    close = fill_close(lot, D("0.5"), D(640), D(640), D("0.0005"), T0, reason=CloseReason.STOP_LOSS)
    assert (close.realized_pnl, close.fee, close.trade_id) == (D(-20), D("0.16"), 7)
    pnl, fee = close_entry(close).flows
    assert (pnl.kind, pnl.amount, fee.kind, fee.amount) == (FlowKind.REALIZED_PNL, D(-20), FlowKind.FEE, D("-0.16"))
    forced = close_entry(fill_close(lot, D("0.5"), D(640), D(640), D("0.0005"), T0, reason=CloseReason.LIQUIDATION))
    assert [f.kind for f in forced.flows] == [FlowKind.REALIZED_PNL, FlowKind.LIQUIDATION_FEE]


def test_a_close_over_lots_takes_the_oldest_first():
    old = Lot(trade(1, "0.3", "100", at=T0), ())
    new = Lot(trade(2, "0.3", "110", at=T0 + timedelta(hours=1)), ())
    parts = close_lots([new, old], D("0.4"), D(120), D(120), D("0.001"), T0 + timedelta(hours=2))
    # 0.3 of trade 1: (120 − 100)·0.3 = 6, fee 0.3·120·0.001 = 0.036; 0.1 of trade 2: 1, fee 0.012
    assert [(c.trade_id, c.qty, c.realized_pnl, c.fee) for _, c in parts] == [
        (1, D("0.3"), D(6), D("0.036")),
        (2, D("0.1"), D(1), D("0.012")),
    ]


def test_a_booking_knows_its_earliest_record():
    later, earlier = T0 + timedelta(days=2), T0 + timedelta(days=1)
    b = booking([transfer_entry(FlowKind.DEPOSIT, D(5), later), open_entry(trade(0, "1", "1", at=earlier))])
    assert b.earliest == earlier
    withdrawal = transfer_entry(FlowKind.WITHDRAWAL, D(5), later)
    assert withdrawal.record.amount == D(-5)


def test_the_ledger_books_a_new_trade_with_its_flows_carrying_its_id(tmp_path: Path):
    source = PathSource(lambda s, t: D(100), lambda: T0 + timedelta(days=1))
    session = session_for(tmp_path / "l.db", source, source.clock, "test")
    ledger = session.ledger
    with ledger.transaction("test"):
        p = ledger.create_portfolio("p", T0)
        (trade_id,) = ledger.book(p, booking([open_entry(trade(0, "1", "100"))])).ids
    [flow] = ledger.cash_flows(p)
    assert (flow.trade_id, flow.amount) == (trade_id, D(-1))
    with pytest.raises(RuntimeError, match="inside Ledger.transaction"):
        ledger.book(p, booking([transfer_entry(FlowKind.DEPOSIT, D(1), T0)]))
    session.close()


def test_a_price_request_inside_a_transaction_is_refused(tmp_path: Path):
    source = PathSource(lambda s, t: D(100), lambda: T0 + timedelta(days=1))
    session = session_for(tmp_path / "l.db", source, source.clock, "test")
    with session.ledger.transaction("test"):
        with pytest.raises(NetworkInTransaction):
            session.prices.marks({"BTC/USDT"})
        with pytest.raises(NetworkInTransaction):
            session.prices.candles("BTC/USDT", "1h", T0, T0 + timedelta(hours=3))
    assert source.requests == []
    assert session.prices.marks({"BTC/USDT"})["BTC/USDT"].price == D(100)  # outside: asked
    session.close()


def test_no_command_asks_for_prices_while_it_holds_the_write_lock(tmp_path: Path):
    """Every writing command, check and snapshot included, fetches first: each request the source saw
    came with no transaction open (the guard would also have refused it)."""
    now = T0 + timedelta(days=9, hours=5)
    source = PathSource(lambda s, t: D(600) + D(t.minute), lambda: now)
    db = tmp_path / "l.db"

    def go(command, use_case, *args, **kwargs):
        return run(db, source, source.clock, command, use_case, *args, **kwargs)

    go("init", portfolios.init_portfolio, "fund", D(10000), T0)
    go("deposit", portfolios.deposit, "fund", D(100))
    go("check", check_service.run_check, ["fund"])
    req = trading.OpenRequest("BNB/USDT", qty=D("0.5"), leverage=2, short=True, stop_loss=D(700))
    go("open", trading.open_trade, "fund", req)
    go("open", trading.open_trade, "fund", trading.OpenRequest("BTC/USDT", qty=D("0.1"), at=now - timedelta(hours=3)))
    go("withdraw", portfolios.withdraw, "fund", D(50))
    go("snapshot", snapshots.take_snapshots, ["fund"])
    go("check", check_service.run_check, ["fund"])
    go("close", trading.close_trades, "fund", "BTC/USDT")
    kinds = {what for what, _ in source.requests}
    assert {"quotes", "candles", "price_at"} <= kinds
    assert [r for r in source.requests if r[1]] == []


@pytest.mark.parametrize("command", ["check", "snapshot", "withdraw"])
def test_a_position_opened_between_the_fetch_and_the_lock_is_not_priced_under_the_lock(tmp_path, monkeypatch, command):
    """The race of a concurrent ``open``: the command's prices are fetched, another process opens a
    new symbol, then the command's transaction sees a position it has no mark for. It uses the
    opener's cached quote rather than asking the exchange under the write lock."""
    now = T0 + timedelta(days=2)
    source = PathSource(lambda s, t: D(600), lambda: now)
    db = tmp_path / "l.db"
    run(db, source, source.clock, "init", portfolios.init_portfolio, "fund", D(10000), T0)
    run(db, source, source.clock, "open", trading.open_trade, "fund", trading.OpenRequest("BTC/USDT", qty=D("0.1")))

    def someone_opens() -> None:
        req = trading.OpenRequest("ETH/USDT", qty=D("1"))
        run(db, source, source.clock, "open", trading.open_trade, "fund", req)

    if command == "check":
        real = check_service._fetch
        monkeypatch.setattr(check_service, "_fetch", lambda *a, **k: (real(*a, **k), someone_opens())[0])
        use_case, args = check_service.run_check, (["fund"],)
    elif command == "snapshot":
        real_closes = snapshots.fetch_day_closes
        monkeypatch.setattr(snapshots, "fetch_day_closes", lambda *a, **k: (real_closes(*a, **k), someone_opens())[0])
        use_case, args = snapshots.take_snapshots, (["fund"],)
    else:
        real_marks = portfolios.open_symbols
        monkeypatch.setattr(portfolios, "open_symbols", lambda *a, **k: (real_marks(*a, **k), someone_opens())[0])
        use_case, args = portfolios.withdraw, ("fund", D(10))
    source.requests.clear()
    run(db, source, source.clock, command, use_case, *args)
    assert source.requests and [r for r in source.requests if r[1]] == []


def test_a_live_open_committed_after_a_later_snapshot_leaves_no_snapshot_without_it(tmp_path, monkeypatch):
    """The race of cron and a trader: ``open`` takes its moment, then fetches prices; meanwhile a
    ``snapshot`` a minute later commits first, without the trade. The open, dated before it, drops
    that snapshot and rebuilds it: the day's snapshot holds the position, and verify finds nothing."""
    from portfolio_cli.services.verify import verify

    moment = [T0 + timedelta(days=2)]
    source = PathSource(lambda s, t: D(600), lambda: moment[0])
    db = tmp_path / "l.db"

    def clock() -> datetime:
        return moment[0]

    run(db, source, clock, "init", portfolios.init_portfolio, "fund", D(10000), T0)
    run(db, source, clock, "snapshot", snapshots.take_snapshots, ["fund"])
    opened_at = moment[0]

    def cron_snapshots_meanwhile(*args, **kwargs):
        held = real(*args, **kwargs)
        moment[0] = opened_at + timedelta(minutes=1)
        run(db, source, clock, "snapshot", snapshots.take_snapshots, ["fund"])
        return held

    real = trading.marks_for  # the open's price fetch, after its moment is taken
    monkeypatch.setattr(trading, "marks_for", cron_snapshots_meanwhile)
    fill = run(db, source, clock, "open", trading.open_trade, "fund", trading.OpenRequest("BTC/USDT", qty=D("0.1")))
    assert fill.at == opened_at
    session = session_for(db, source, clock, "verify")
    try:
        report = verify(session)
        [today] = [s for s in session.ledger.snapshots(session.ledger.portfolio("fund"), positions=True)
                   if s.day == opened_at.date()]
    finally:
        session.close()
    assert report.differences == [] and report.ok
    assert today.taken_at > opened_at and [p.trade_id for p in today.positions] == [fill.trade_id]
