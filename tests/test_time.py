"""Records dated in the past: validated against the state at their moment, refused when they would
break a later record, and followed by what was derived after them (snapshots rebuilt, the check
watermark rewound so the next check replays the window). In-process, over a known price path."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from portfolio_cli.errors import RuleRefused
from portfolio_cli.ledger import open_ledger
from portfolio_cli.services import check as check_service
from portfolio_cli.services import portfolios, snapshots, trading
from portfolio_cli.services.verify import verify
from timeline import PathSource, run

T0 = datetime(2026, 11, 20, tzinfo=UTC)
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
STOP_HIT = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)


def bnb_path(symbol: str, minute: datetime) -> D:
    """BNB at 600, rising to 650 from 02:30 on 29 November; everything else flat at 100."""
    if symbol != "BNB/USDT":
        return D(100)
    return D(650) if minute >= STOP_HIT else D(600)


class History:
    def __init__(self, tmp_path: Path, name: str, price=bnb_path, now: datetime = NOW):
        self.db = tmp_path / f"{name}.db"
        self.source = PathSource(price, lambda: now)
        self.warnings: list[str] = []

    def __call__(self, command: str, use_case, *args, **kwargs):
        return run(self.db, self.source, self.source.clock, command, use_case, *args, warnings=self.warnings, **kwargs)

    def init(self, at: datetime = T0, balance: str = "10000"):
        return self("init", portfolios.init_portfolio, "fund", D(balance), at)

    def check(self):
        return self("check", check_service.run_check, ["fund"])

    def open(self, symbol: str, qty: str, at: datetime | None = None, **options):
        return self("open", trading.open_trade, "fund", trading.OpenRequest(symbol, qty=D(qty), at=at, **options))

    def closes(self) -> list[tuple]:
        ledger = open_ledger(self.db)
        try:
            p = ledger.portfolio("fund")
            closes = ledger.closes(p)
            return [(c.trade_id, c.qty, c.price, c.closed_at, c.reason, c.realized_pnl, c.fee) for c in closes]
        finally:
            ledger.close()

    def snapshots(self):
        ledger = open_ledger(self.db)
        try:
            return ledger.snapshots(ledger.portfolio("fund"))
        finally:
            ledger.close()

    def verified(self) -> bool:
        return self("verify", verify).ok


BNB_SHORT = {"leverage": 2, "short": True, "price": D(600), "stop_loss": D(640)}
AT_0100 = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


def test_a_trade_backdated_before_the_last_check_is_replayed_by_the_next_check(tmp_path):
    """The issue's reproduction: init --at 2026-11-20; check; open BNB/USDT short --at 2026-11-29T01:00
    --price 600 --stop-loss 640; check — closed by its stop exactly as with no earlier check."""
    checked = History(tmp_path, "checked")
    checked.init()
    checked.check()
    checked.open("BNB/USDT", "0.5", AT_0100, **BNB_SHORT)
    result = checked.check()
    assert [e.kind for e in result.portfolios[0].events if e.kind == "stop_loss"] == ["stop_loss"]

    fresh = History(tmp_path, "fresh")
    fresh.init()
    fresh.open("BNB/USDT", "0.5", AT_0100, **BNB_SHORT)
    fresh.check()
    # The 02:00 hourly candle reaches 650: the stop at 640 is touched and fills at 640.
    # gross −1·0.5·(640 − 600) = −20; exit fee 0.5·640·0.0005 = 0.16
    assert fresh.closes() == checked.closes()
    [(_, qty, price, at, reason, pnl, fee)] = checked.closes()
    assert (qty, price, at, reason.value, pnl, fee) == (D("0.5"), D(640), STOP_HIT.replace(minute=0), "stop_loss",
                                                       D(-20), D("0.16"))
    assert checked.check().portfolios[0].events == ()  # replayed once: nothing is booked twice


def test_a_backdated_open_is_risk_checked_against_the_state_at_its_moment(tmp_path, monkeypatch):
    """Equity then was 10,000 less fees; now BTC has doubled. 5,500 of ETH is 55 % of equity then
    (over the 50 % limit), 39 % of today's."""
    monkeypatch.setenv("PORTFOLIO_RISK__MAX_POSITION_PCT", "50")

    def btc_doubles(symbol: str, minute: datetime) -> D:
        if symbol == "BTC/USDT":
            return D(40000) if minute < T0 + timedelta(days=5) else D(80000)
        return D(1000)

    h = History(tmp_path, "risk", price=btc_doubles)
    h.init()
    h.open("BTC/USDT", "0.1", T0 + timedelta(hours=1))  # 4,000 of BTC at 40,000
    with pytest.raises(RuleRefused, match="10000|equity"):
        h.open("ETH/USDT", "5.5", T0 + timedelta(hours=2))
    h.open("ETH/USDT", "5.5")  # today, at today's equity, it fits


def test_a_backdated_close_beyond_what_a_later_close_left_is_refused_naming_it(tmp_path):
    h = History(tmp_path, "close")
    h.init()
    h.open("SOL/USDT", "10", T0 + timedelta(hours=1))
    h("close", trading.close_trades, "fund", "1", at=T0 + timedelta(hours=5))
    with pytest.raises(RuleRefused, match=r"later close \(10 at 2026-11-20 05:00 UTC\)"):
        h("close", trading.close_trades, "fund", "1", qty=D(4), at=T0 + timedelta(hours=2))
    assert len(h.closes()) == 1


def test_a_backdated_trade_that_takes_the_free_margin_a_later_trade_needed_is_refused_naming_it(tmp_path):
    h = History(tmp_path, "margin")
    h.init()
    h.open("SOL/USDT", "80", T0 + timedelta(hours=3))  # 8,000 of the 10,000
    with pytest.raises(RuleRefused, match=r"trade 1 \(SOL/USDT, opened 2026-11-20 03:00 UTC\)"):
        h.open("BNB/USDT", "50", T0 + timedelta(hours=1), price=D(100))  # 5,000, fine at 01:00 alone
    assert h.closes() == [] and len(h.snapshots()) == 0


def test_a_backdated_deposit_rebuilds_the_snapshots_after_it(tmp_path):
    h = History(tmp_path, "snap")
    h.init()
    h.open("SOL/USDT", "10", T0 + timedelta(hours=1))
    h("snapshot", snapshots.take_snapshots, ["fund"])
    before = {s.day: s.equity for s in h.snapshots()}
    h("deposit", portfolios.deposit, "fund", D(1000), at=T0 + timedelta(days=3, hours=12))
    after = {s.day: s.equity for s in h.snapshots()}
    assert set(after) == set(before)
    changed = {day for day in after if after[day] != before[day]}
    # The snapshot of day D is its end (00:00 UTC of D+1): day T0+3 already holds a deposit of its noon.
    assert changed == {day for day in after if day >= (T0 + timedelta(days=3)).date()}
    assert all(after[day] - before[day] == D(1000) for day in changed)
    assert h.verified()


def test_funding_booked_by_check_for_a_snapshotted_moment_rebuilds_those_snapshots(tmp_path):
    h = History(tmp_path, "funding")
    h.init()
    h.open("BNB/USDT", "0.5", AT_0100, leverage=2, short=True)
    h("snapshot", snapshots.take_snapshots, ["fund"])
    h.check()  # books the funding of 29 November 08:00 onwards, before the snapshots' moments
    assert h.verified()


def test_a_stale_day_that_cannot_be_priced_is_named_and_rebuilt_by_the_next_snapshot(tmp_path):
    h = History(tmp_path, "stale")
    h.init()
    h.open("SOL/USDT", "10", T0 + timedelta(hours=1))
    h("snapshot", snapshots.take_snapshots, ["fund"])
    days = len(h.snapshots())
    with sqlite3.connect(h.db) as conn:
        conn.execute("delete from candles")  # nothing cached, and the exchange fails
    h.source.failing.update({"1d", "1h", "1m"})
    h("deposit", portfolios.deposit, "fund", D(1000), at=NOW - timedelta(days=2))
    assert any("stale" in w and "next 'portfolio snapshot'" in w for w in h.warnings)
    assert len(h.snapshots()) < days  # the stale days are not kept with wrong figures
    h.source.failing.clear()
    h("snapshot", snapshots.take_snapshots, ["fund"])
    assert len(h.snapshots()) == days and h.verified()


def test_a_backdated_amendment_before_funding_already_booked_on_its_trade_is_refused(tmp_path):
    """Found by the order-independence property: levels set before a funding payment already booked
    could close the position earlier on the next replay, and that funding would stay booked on a
    position that was no longer open. As a backdated close is, the amendment is refused."""
    from portfolio_cli.services import amend

    h = History(tmp_path, "amend")
    h.init()
    opened = h.open("BNB/USDT", "0.5", AT_0100 - timedelta(days=1), leverage=2, short=True, price=D(600))
    h.check()  # funding every 8 hours from 28 November 08:00 (the configured rate), on the open short
    stop_before_the_rise = amend.AmendRequest(opened.trade_id, stop_loss=D(640), at=AT_0100)
    booked_after = r"funding of trade 1 was booked after 2026-11-29 01:00 UTC \(at 2026-11-29 08:00"
    with pytest.raises(RuleRefused, match=booked_after):
        h("amend", amend.amend_trade, "fund", stop_before_the_rise)
    assert h.closes() == [] and h.verified()
    # after the last funding it is taken: BNB is at 650 by then, so the short's stop goes above it
    h("amend", amend.amend_trade, "fund", amend.AmendRequest(opened.trade_id, stop_loss=D(700), at=NOW))
