"""Calendar-true periods: the snapshot of day D is the equity at the end of D (00:00 UTC of D + 1),
so a month, a week and `report --from/--to` are the calendar's own, and today's snapshot is
provisional until the day ends. Old ledgers are relabelled by a migration."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from test_snapshots import daily_open, day

FEB = date(2024, 2, 1)


def price_at_midnight(moment: date) -> D:
    """BTC at 00:00 UTC of ``moment``: a zigzag around 40,000 that is different every day."""
    n = (moment - date(2024, 1, 28)).days
    return D(40000 + 300 * (n % 7) - 450 * (n % 3))


@pytest.fixture
def february(cli, binance):
    """0.1 BTC held from 29 January 01:00 to 3 March 12:00 2024, priced every midnight in between."""
    first, last = date(2024, 1, 28), date(2024, 3, 4)
    for n in range((last - first).days + 1):
        moment = first + timedelta(n)
        daily_open(
            binance, "BTC/USDT", datetime.combine(moment, datetime.min.time(), UTC), str(price_at_midnight(moment))
        )
    cli("init", "--at", "2024-01-29T00:00")
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", "2024-01-29T01:00")  # fee 4
    cli("close", "1", "--price", "40000", "--at", "2024-03-03T12:00")
    cli("snapshot")
    return cli


def equity_at_midnight(moment: date) -> float:
    """By hand: 10,000 less the 4 entry fee, plus 0.1 BTC marked at that midnight's price."""
    return 10000 - 4 + 0.1 * (float(price_at_midnight(moment)) - 40000)


def test_february_is_the_same_figure_in_the_grid_the_range_and_by_hand(february):
    whole = february.json("report")
    grid = {p["start"]: p["return"] for p in whole["periods"]["month"]["returns"]}
    ranged = february.json("report", "--from", "2024-02-01", "--to", "2024-02-29")
    # The calendar month: from the end of 31 January (00:00 of 1 February) to the end of 29 February
    # (00:00 of 1 March); nothing deposited or withdrawn in between.
    by_hand = equity_at_midnight(date(2024, 3, 1)) / equity_at_midnight(FEB) - 1
    assert grid["2024-02-01"] == ranged["metrics"]["total_return"]  # exactly: the same daily returns
    assert ranged["metrics"]["total_return"] == pytest.approx(by_hand, abs=1e-12)
    assert (ranged["range"]["first_day"], ranged["range"]["last_day"]) == ("2024-02-01", "2024-02-29")
    assert D(ranged["equity"]["start"]) == D(str(equity_at_midnight(FEB)))
    assert D(ranged["equity"]["end"]) == D(str(equity_at_midnight(date(2024, 3, 1))))
    months = {r["day"][:7]: r["return_pct"] for r in february.json("history", "--every", "month")["rows"]}
    assert months["2024-02"] == pytest.approx(by_hand * 100, abs=1e-10)


def test_a_day_week_and_best_day_are_the_calendars(february):
    r = february.json("report", "--from", "2024-02-05", "--to", "2024-02-11")  # Monday to Sunday
    week = equity_at_midnight(date(2024, 2, 12)) / equity_at_midnight(date(2024, 2, 5)) - 1
    assert r["metrics"]["total_return"] == pytest.approx(week, abs=1e-12)
    [only] = r["periods"]["week"]["returns"]
    assert only["start"] == "2024-02-05" and only["return"] == r["metrics"]["total_return"]
    daily = {
        d: equity_at_midnight(d + timedelta(1)) / equity_at_midnight(d) - 1
        for d in (date(2024, 2, 5) + timedelta(n) for n in range(7))
    }
    best = max(daily, key=daily.__getitem__)
    assert r["periods"]["day"]["best"]["start"] == best.isoformat()
    assert r["periods"]["day"]["best"]["return"] == pytest.approx(daily[best], abs=1e-12)
    one = february.json("report", "--from", "2024-02-07", "--to", "2024-02-07")
    assert one["metrics"]["total_return"] == pytest.approx(daily[date(2024, 2, 7)], abs=1e-12)


def test_a_backfilled_day_is_valued_at_its_daily_candles_close(february):
    rows = {
        r["day"]: r
        for r in february.json("history", "--every", "day", "--from", "2024-02-10", "--to", "2024-02-10")["daily"]
    }
    assert D(rows["2024-02-10"]["equity"]) == D(str(equity_at_midnight(date(2024, 2, 11))))
    assert rows["2024-02-10"]["taken_at"].startswith("2024-02-11T00:00:00")
    february("verify")


def test_todays_snapshot_is_provisional_and_the_days_end_replaces_it(cli, binance, ledger_path):
    from portfolio_cli.services.snapshots import take_snapshots
    from portfolio_cli.session import Session

    for k in (-1, 0):
        daily_open(binance, "BTC/USDT", day(k), "41000" if k == 0 else "40000")
    cli("init", "--at", day(-1).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-1) + timedelta(hours=1)).isoformat())
    # A hand-taken snapshot at 15:00 yesterday, at that moment's price (the fake's quote, 40,500).
    binance.prices["BTC/USDT"] = D("40500")
    session = Session.create("portfolio snapshot")
    session.clock = lambda: day(-1) + timedelta(hours=15)
    try:
        run = take_snapshots(session, ["main"])
    finally:
        session.close()
    assert run.day == day(-1).date() and D(run.portfolios[0].today.equity) == D("10046")  # 9996 + 0.1 × 500
    report = cli.json("report")
    assert any("taken during the day, not at its end" in note for note in report["notes"])

    cli("snapshot")  # the next day: yesterday is over, valued at its daily candle's close, 41,000
    rows = {r["day"]: r for r in cli.json("history", "--every", "day")["daily"]}
    yesterday = rows[day(-1).date().isoformat()]
    assert D(yesterday["equity"]) == D("10096") and yesterday["backfilled"] is True
    with sqlite3.connect(ledger_path) as conn:
        (taken_at,) = conn.execute(
            "select taken_at from snapshots where day = ?", [day(-1).date().isoformat()]
        ).fetchone()
    assert taken_at.startswith(day(0).isoformat()[:19])
    assert not any("taken during the day" in note for note in cli.json("report")["notes"])
    cli("verify")


def test_the_migration_relabels_an_old_ledger_and_verify_passes(cli, binance, ledger_path):
    """An old ledger labelled the equity at 00:00 of D as day D, and a snapshot taken at 15:00 of D as D
    too. m006 relabels the first as D − 1 (its values are exactly that day's end), keeps the second as
    D's provisional one unless a day's end lands on it, and the next `snapshot` values what is left."""
    for k in range(-6, 1):
        daily_open(binance, "BTC/USDT", day(k), str(40000 + 1000 * (k % 3)))
    cli("init", "--at", day(-6).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-6) + timedelta(hours=1)).isoformat())
    cli("snapshot")
    now = {r["day"]: r["equity"] for r in cli.json("history", "--every", "day")["daily"]}
    iso = {k: day(k).date().isoformat() for k in range(-7, 1)}

    with sqlite3.connect(ledger_path) as conn:  # back to the old labels and the schema before m006
        conn.execute("pragma foreign_keys = on")
        conn.execute("delete from _sqlite_migrations where name = 'm006_calendar_snapshots'")
        conn.execute(
            "delete from snapshot_positions where snapshot_id = (select id from snapshots where day = ?)", [iso[-1]]
        )
        conn.execute("delete from snapshots where day = ?", [iso[-1]])  # old: today was taken live, never at 00:00
        for k in range(-2, -8, -1):
            conn.execute("update snapshots set day = ? where day = ?", [iso[k + 1], iso[k]])
        # An old snapshot taken at 15:00 of day −4 (the one labelled −4 held 00:00 of −4: the end of −5).
        conn.execute(
            "update snapshots set taken_at = ? where day = ?",
            [(day(-4) + timedelta(hours=15)).isoformat(timespec="microseconds"), iso[-4]],
        )

    history = {r["day"]: r["equity"] for r in cli.json("history", "--every", "day")["daily"]}  # migrates
    # Relabelled back; −4's end replaced the 15:00 snapshot; −5 (held by it) and −1 wait for `snapshot`.
    assert history == {iso[k]: now[iso[k]] for k in (-7, -6, -4, -3, -2, 0)}
    assert cli.json("verify")["ok"] is True
    with sqlite3.connect(ledger_path) as conn:
        [(details,)] = conn.execute("select details from audit_log where action = 'relabel snapshots'").fetchall()
    assert details == '{"relabelled": 5, "replaced provisional": 1}'

    cli("snapshot")
    assert {r["day"]: r["equity"] for r in cli.json("history", "--every", "day")["daily"]} == now
    cli("verify")
