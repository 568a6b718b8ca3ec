"""Daily snapshots: idempotence, backfill of a hole from the fake Binance's daily candles, time travel
with --at, retention, verify and the cron lines."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

from conftest import ledger_rows

INCOMPLETE = 13


def day(offset: int) -> datetime:
    """00:00 UTC ``offset`` days from today (negative: in the past)."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=offset)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def daily_open(binance, symbol: str, moment: datetime, price: str) -> None:
    """``symbol`` at ``price`` at 00:00 UTC of ``moment``'s day: that day's daily candle opens at it
    and the day before's closes at it (the price a snapshot of the day before is valued at)."""
    p = D(price)
    day_key, before_key = (symbol, "1d", ms(moment)), (symbol, "1d", ms(moment - timedelta(days=1)))
    _, high, low, close = binance.ohlc.get(day_key, (p, p, p, p))
    binance.ohlc[day_key] = (p, max(high, p), min(low, p), close)
    opened, high, low, _ = binance.ohlc.get(before_key, (p, p, p, p))
    binance.ohlc[before_key] = (opened, max(high, p), min(low, p), p)


def snapshots(cli) -> dict[str, dict]:
    return {row["day"]: row for row in cli.json("history", "--every", "day")["daily"]}


def test_running_snapshot_twice_a_day_keeps_one_row_and_the_later_wins(cli, binance, ledger_path):
    cli("init", "--at", day(0).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000")  # fee 4
    first = cli.json("snapshot")["portfolios"][0]["today"]
    assert D(first["equity"]) == D("9996")  # marked at the fake's 40000

    binance.prices["BTC/USDT"] = D("41000")
    second = cli.json("snapshot")["portfolios"][0]["today"]
    assert D(second["equity"]) == D("10096")  # 9996 + 0.1 × 1000

    # Today's row, and yesterday's end: the moment the portfolio was created, 00:00 today.
    assert sorted(snapshots(cli)) == [day(-1).date().isoformat(), day(0).date().isoformat()]
    with sqlite3.connect(ledger_path) as conn:
        (equity, positions) = conn.execute(
            "select equity, (select count(*) from snapshot_positions) from snapshots where day = ?",
            [day(0).date().isoformat()],
        ).fetchone()
    assert D(equity) == D("10096") and positions == 1
    cli("verify")


def test_a_ten_day_hole_is_backfilled_from_daily_candles_as_a_hand_calculation_gives(cli, binance, ledger_path):
    # The portfolio began 10 days ago at 00:00 (the end of day −11); nothing snapshotted it since:
    # days −11 … −1 are the hole. (Scripted first: opening a trade caches daily candles for the
    # correlation rule.)
    for k in range(-10, 1):
        daily_open(binance, "BTC/USDT", day(k), str(40000 + 500 * (k + 10)))  # 40000, 40500, … 45000
        daily_open(binance, "ETH/USDT", day(k), str(2000 - 20 * (k + 10)))  # 2000, 1980, … 1800
    cli("init", "--balance", "10000", "--at", day(-10).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-8) + timedelta(hours=12)).isoformat())
    cli(
        "open", "ETH/USDT", "--qty", "1", "--price", "2000", "--short", "--leverage", "2",
        "--at", (day(-6) + timedelta(hours=6)).isoformat(),
    )  # fmt: skip
    cli("close", "1", "--qty", "0.05", "--price", "42000", "--at", (day(-4) + timedelta(hours=9)).isoformat())
    cli("deposit", "1000", "--at", day(-3).isoformat())  # at 00:00 exactly: the end of day −4 includes it

    result = cli("snapshot", "--json")
    run = json.loads(result.stdout)
    assert run["complete"] is True
    assert result.stderr == ""  # no progress bar on a pipe
    assert run["portfolios"][0]["backfilled"] == [day(k).date().isoformat() for k in range(-11, 0)]
    got = {d: D(row["equity"]) for d, row in snapshots(cli).items()}

    # By hand. Fees: BTC entry 0.1 × 40000 × 0.001 = 4; ETH entry 1 × 2000 × 0.0005 = 1; BTC partial
    # exit 0.05 × 42000 × 0.001 = 2.1 with 0.05 × 2000 = 100 realized. Each day is valued at its end,
    # 00:00 of the next day, at the daily candle's close (the next day's open).
    expected = {
        -11: "10000",  # the end of day −11 is the moment the portfolio began
        -10: "10000",  # nothing open
        -9: "10000",  # the BTC buy is at 12:00 of day −8
        -8: "10146",  # 10000 − 4 + 0.1 × (41500 − 40000)
        -7: "10196",  # 9996 + 0.1 × 2000; the ETH short opens at 06:00 of day −6
        -6: "10345",  # 9995 + 0.1 × 2500 + 1 × (2000 − 1900)
        -5: "10415",  # 9995 + 0.1 × 3000 + 120; the partial close is at 09:00 of day −4
        -4: "11407.9",  # 9995 + 100 − 2.1 + 1000 deposit = 11092.9; + 0.05 × 3500 + 140
        -3: "11452.9",  # 11092.9 + 0.05 × 4000 + 160
        -2: "11497.9",  # 11092.9 + 0.05 × 4500 + 180
        -1: "11542.9",  # 11092.9 + 0.05 × 5000 + 200, at 00:00 today
    }
    assert {k: got[day(k).date().isoformat()] for k in expected} == {k: D(v) for k, v in expected.items()}
    rows = {r["day"]: r for r in cli.json("history", "--every", "day")["daily"]}
    assert all(rows[day(k).date().isoformat()]["backfilled"] for k in range(-11, 0))
    # Day −4's return excludes the 1000 deposit: (11407.9 − 1000) / 10415 − 1.
    assert abs(rows[day(-4).date().isoformat()]["return_pct"] - ((11407.9 - 1000) / 10415 - 1) * 100) < 1e-9
    # Each backfilled day was priced from one daily-candle request per symbol, then cached (the
    # others are 1-minute candles: the one that valued BTC when the ETH short was opened backdated,
    # and the market at each of the three backdated fills, which their --price is held near).
    def daily() -> int:
        return sum(1 for r in binance.requests if r.path.endswith("/klines") and r.query.get("interval") == ["1d"])

    assert daily() == 2 and binance.count("/klines") == 6
    assert cli("snapshot", "--quiet").stdout == ""  # cron mails nothing when all went well
    assert daily() == 2 and binance.count("/klines") == 6
    cli("verify")


def test_offline_days_without_candles_are_reported_not_invented_and_filled_later(cli, binance, ledger_path):
    cli("init", "--at", day(-3).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-3) + timedelta(hours=1)).isoformat())
    cli("value")  # caches today's quote
    result = cli("snapshot", "--offline", code=INCOMPLETE)
    assert "not snapshotted: no daily candle (offline): BTC/USDT" in result.stderr
    assert len(ledger_rows(ledger_path, "snapshots")) == 2  # day −4 (its end, nothing open yet) and today

    for k in (-2, -1, 0):
        daily_open(binance, "BTC/USDT", day(k), "41000")
    cli("snapshot")
    assert len(ledger_rows(ledger_path, "snapshots")) == 5  # days −4 … −1 and today
    assert D(snapshots(cli)[day(-1).date().isoformat()]["equity"]) == D("10096")


def test_today_is_not_snapshotted_at_a_price_from_an_earlier_day(cli, ledger_path):
    cli("init", "--at", day(-1).isoformat())
    # the fill is yesterday's too: a fill is a known price, and one from today could be used
    fill_at = (day(-1) + timedelta(hours=1)).isoformat()
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", fill_at, "--offline")
    with sqlite3.connect(ledger_path) as conn:
        conn.execute(
            "insert or replace into quotes values ('BTC/USDT', '40000', ?, ?, 'binance')",
            [day(-1).isoformat(), day(-1).isoformat()],
        )
    result = cli("snapshot", "--offline", code=INCOMPLETE)
    assert "before today: BTC/USDT" in result.stderr
    assert "Traceback" not in result.stderr


def test_value_and_positions_at_before_between_and_after_trades(cli, binance):
    cli("init", "--at", day(-5).isoformat())
    opened, closed = day(-3) + timedelta(hours=12), day(-1) + timedelta(hours=12)
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", opened.isoformat())  # fee 4
    cli("close", "1", "--price", "44000", "--at", closed.isoformat())  # +400, fee 4.4
    daily_open(binance, "BTC/USDT", day(-2), "42000")
    minute = day(-2) + timedelta(hours=15, minutes=30)
    binance.ohlc[("BTC/USDT", "1m", ms(minute))] = (D(43000), D(43100), D(42900), D(43050))

    before = cli.json("value", "--at", day(-4).isoformat())
    assert D(before["valuation"]["equity"]) == D(10000) and before["valuation"]["positions"] == []

    between = cli.json("value", "--at", day(-2).isoformat())["valuation"]
    assert D(between["equity"]) == D("10196")  # 9996 + 0.1 × (42000 − 40000), the day's open
    [position] = between["positions"]
    assert position["price_source"] == "candle 1d"

    intraday = cli.json("positions", "--at", minute.isoformat())
    assert D(intraday[0]["mark"]) == D(43000)  # the open of the minute's candle
    assert D(intraday[0]["unrealized_pnl"]) == D(300)

    after = cli.json("value", "--at", (closed + timedelta(hours=1)).isoformat())["valuation"]
    assert D(after["equity"]) == D("10391.6") and after["positions"] == []
    assert D(after["realized_pnl"]) == D(400) and D(after["fees"]) == D("8.4")

    # The same state again, offline, from the candles the first run cached.
    offline = cli.json("value", "--at", day(-2).isoformat(), "--offline")["valuation"]
    assert offline["equity"] == between["equity"]
    # And the snapshot of the day before, whose end is that moment, agrees with it.
    cli("snapshot")
    assert snapshots(cli)[day(-3).date().isoformat()]["equity"] == between["equity"]


def test_at_refuses_the_future_and_before_the_portfolio(cli):
    cli("init", "--at", day(-2).isoformat())
    assert "in the future" in cli("value", "--at", day(2).isoformat(), code=2).stderr
    assert "before main was created" in cli("value", "--at", day(-3).isoformat(), code=2).stderr
    assert "not a date" in cli("positions", "--at", "yesterday", code=2).stderr


def test_retention_window_keeps_the_last_days_only(cli, binance, ledger_path, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[snapshots]\nkeep_days = 3\n")
    cli("init", "--at", day(-6).isoformat())
    cli("snapshot")  # without the window: days −7 (its end is the start) … −1 and today
    assert len(ledger_rows(ledger_path, "snapshots")) == 8
    run = cli.json("snapshot", "--config", str(config))
    assert run["dropped"] == 5
    assert sorted(snapshots(cli)) == [day(k).date().isoformat() for k in (-2, -1, 0)]


def test_verify_finds_a_tampered_snapshot_and_a_tampered_close(cli, binance, ledger_path):
    cli("init", "--at", day(-2).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-2) + timedelta(hours=1)).isoformat())
    cli("close", "1", "--qty", "0.05", "--price", "41000")
    cli("snapshot")
    assert cli.json("verify")["ok"] is True

    with sqlite3.connect(ledger_path) as conn:
        conn.execute("update snapshots set equity = '1.00000000' where day = ?", [day(-1).date().isoformat()])
        conn.execute("update closes set realized_pnl = '99.00000000'")
    result = cli("verify", code=6)
    assert f"snapshot {day(-1).date().isoformat()}" in result.stdout
    assert "equity" in result.stdout
    assert "close 1" in result.stdout


def test_cron_lines_use_absolute_paths(cli, tmp_path):
    db = tmp_path / "books" / "ledger.db"
    cli("init", "--db", str(db))
    lines = cli("cron", "--db", str(db)).stdout.splitlines()
    jobs = [line for line in lines if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(jobs) == 2
    snapshot_job, check_job = jobs
    assert snapshot_job.startswith("5 0 * * * ")
    assert " snapshot --all --quiet " in snapshot_job and f"--db {db}" in snapshot_job
    assert " check --quiet " in check_job
    program = snapshot_job.split()[5]
    assert Path(program).is_absolute()
    assert "CRON_TZ=UTC" in lines
