"""`portfolio report` end to end: scripted trades and daily candles on the fake Binance, snapshots
backfilled by the real command, then the report's figures against hand calculations and each other."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta
from decimal import Decimal as D

import pytest

from test_snapshots import daily_open, day, ms

# BTC's daily opens from day −5: +10 %, −10 %, 0, +10 %, then today's first minute.
BTC = {-5: "40000", -4: "44000", -3: "39600", -2: "39600", -1: "43560"}
ETH = {-5: "2000", -4: "2000", -3: "2050", -2: "1950", -1: "1950"}


def at(offset: int, hours: int) -> str:
    return (day(offset) + timedelta(hours=hours)).isoformat()


@pytest.fixture
def traded(cli, binance):
    """Five days of trading: a win, a loss, a position still open and a deposit, snapshotted."""
    for k in BTC:
        daily_open(binance, "BTC/USDT", day(k), BTC[k])
        daily_open(binance, "ETH/USDT", day(k), ETH[k])
    price = D("43560")
    binance.ohlc[("BTC/USDT", "1m", ms(day(0)))] = (price, price, price, price)
    binance.prices["BTC/USDT"] = price
    binance.prices["ETH/USDT"] = D("1950")
    cli("init", "--balance", "10000", "--at", day(-5).isoformat())
    # Trade 1, trend: 0.1 BTC 40000 → 41000: 100 realized, fees 4 + 4.1, net 91.9.
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--strategy", "trend", "--at", at(-5, 1))
    # Trade 2, swing: 1 ETH 2000 → 1900: −100 realized, fees 2 + 1.9, net −103.9.
    cli("open", "ETH/USDT", "--qty", "1", "--price", "2000", "--strategy", "swing", "--at", at(-4, 2))
    # Trade 3, untagged: 0.05 BTC at 39600, still open.
    cli("open", "BTC/USDT", "--qty", "0.05", "--price", "39600", "--at", at(-3, 1))
    cli("close", "1", "--price", "41000", "--at", at(-3, 12))
    cli("close", "2", "--price", "1900", "--at", at(-2, 1))
    cli("deposit", "1000", "--at", at(-1, 6))
    cli("snapshot")
    return cli


def test_pnl_reconciles_exactly_and_attribution_adds_up_to_it(traded):
    r = traded.json("report")
    equity, pnl = r["equity"], r["pnl"]
    # From the end of day −6 (00:00 of day −5, when the portfolio began) to today's snapshot.
    assert r["range"]["first_day"] == day(-5).date().isoformat() and r["range"]["daily_snapshots"] == 7
    assert D(equity["start"]) == D("10000") and D(equity["deposits"]) == D("1000")
    total = D(pnl["total"])
    assert total == D(equity["end"]) - D(equity["start"]) - D(equity["deposits"]) + D(equity["withdrawals"])
    assert D(pnl["realized"]) == D("0")  # +100 and −100
    assert D(pnl["fees"]) == D("4") + D("4.1") + D("2") + D("1.9") + D("0.0396") * 50  # entry of trade 3: 1.98
    assert total == D(pnl["realized"]) - D(pnl["fees"]) + D(pnl["funding"]) + D(pnl["unrealized_change"])
    assert D(pnl["unrealized_open"]) == D("0.05") * (D("43560") - D("39600"))  # 198
    for key in ("strategy", "asset", "side"):
        assert sum(D(row["pnl"]) for row in r["attribution"][key]) == total
    by_strategy = {row["name"]: D(row["pnl"]) for row in r["attribution"]["strategy"]}
    assert by_strategy == {"trend": D("91.9"), "swing": D("-103.9"), "(untagged)": D("198") - D("1.98")}


def test_trade_statistics_use_net_pnl(traded):
    t = traded.json("report")["trades"]
    assert (t["count"], t["wins"], t["losses"]) == (2, 1, 1)
    assert t["win_rate"] == 0.5
    assert (D(t["largest_win"]), D(t["largest_loss"])) == (D("91.9"), D("-103.9"))
    assert t["profit_factor"] == pytest.approx(91.9 / 103.9)
    assert D(t["expectancy"]) == (D("91.9") - D("103.9")) / 2
    assert (t["current_wins"], t["current_losses"]) == (0, 1)
    # Trade 1 lasted 2 days 11 hours, trade 2 1 day 23 hours.
    assert t["average_duration_seconds"] == ((2 * 24 + 11) + (24 + 23)) / 2 * 3600


def test_returns_chain_the_history_and_the_benchmark_buys_btc_with_the_same_cash(traded):
    r = traded.json("report")
    daily = traded.json("history", "--every", "day")["daily"]
    chained = math.prod(1 + row["return_pct"] / 100 for row in daily[1:]) - 1
    assert r["metrics"]["total_return"] == pytest.approx(chained)
    b = r["benchmark"]
    # 10,000 buys 0.25 BTC at 40,000; the deposit buys 1,000 more on its day; today BTC is at 43,560.
    assert D(b["end_equity"]) == D("0.25") * D("43560") + D("1000")
    assert b["metrics"]["total_return"] == pytest.approx(43560 / 40000 - 1)  # time-weighted: the price move
    assert b["metrics"]["max_drawdown"] == pytest.approx(-0.10)
    assert b["excess_return"] == pytest.approx(r["metrics"]["total_return"] - (43560 / 40000 - 1))
    assert isinstance(b["beta"], float) and isinstance(b["alpha"], float)
    # Month, quarter and year chain the same days: each holds every return here or splits them.
    for unit in ("month", "quarter", "year"):
        assert math.prod(1 + p["return"] for p in r["periods"][unit]["returns"]) - 1 == pytest.approx(chained)


def test_undefined_metrics_say_why_and_show_na(traded):
    # Day −6 has its snapshot (its end is when the portfolio began) but none before it to start from.
    first = day(-6).date().isoformat()
    r = traded.json("report", "--from", first, "--to", first)
    assert r["metrics"]["sharpe"] is None
    assert r["undefined"]["metrics.total_return"] == "no daily returns"
    assert "fewer than two daily snapshots" in r["undefined"]["benchmark"]
    shown = traded("report", "--from", first, "--to", first)
    assert "n/a" in shown.stdout and "1 daily snapshot(s) in the range" in shown.stderr


def test_a_range_without_trades_says_so_and_lists_the_cash_flows(traded):
    since = day(-1).date().isoformat()
    r = traded.json("report", "--from", since)
    assert r["trading_activity"] is False
    assert [(f["kind"], D(f["amount"])) for f in r["cash_flows"]] == [("deposit", D("1000"))]
    out = traded("report", "--from", since).stdout
    assert "No trading activity" in out and "deposit" in out and "1,000.00" in out


def test_csv_carries_the_same_figures(traded):
    r = traded.json("report")
    rows = list(csv.reader(io.StringIO(traded("report", "--csv").stdout)))
    assert rows[0] == ["section", "name", "value", "note"]
    cells = {(s, n): (v, note) for s, n, v, note in rows[1:]}
    assert cells[("pnl", "total")][0] == r["pnl"]["total"]
    assert float(cells[("metrics", "sharpe")][0]) == r["metrics"]["sharpe"]
    assert cells[("trades", "average_loss")][0] == r["trades"]["average_loss"]


def test_terminal_report_shows_every_section(traded):
    out = traded("report", "--period", "all").stdout
    for heading in ("Performance", "PnL (USDT)", "Monthly returns", "Returns by period", "Equity (USDT)"):
        assert heading in out
    assert "Drawdown (%)" in out and "Closed trades" in out and "PnL by strategy" in out
    assert "BTC buy & hold" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--period", "2w"), "Invalid value for '--period': '2w' is not one of '7d', '30d', '90d', 'ytd'"),
        (("--period", "7d", "--from", "2026-01-01"), "give either --period or --from/--to"),
        (("--json", "--csv"), "give either --json or --csv"),
        (("--from", "2026-02-01", "--to", "2026-01-01"), "--from 2026-02-01 is after --to 2026-01-01"),
    ],
)
def test_bad_ranges_are_refused_with_exit_2(cli, args, message):
    cli("init")
    result = cli("report", *args, code=2)
    assert result.stderr.startswith(f"error: {message}") and "Traceback" not in result.stderr


def test_periods_resolve_from_today():
    from datetime import date

    from portfolio_cli.services.report import report_range

    today = date(2026, 11, 21)
    # Both ends included: 7 days of returns, measured from the end of 14 November.
    assert report_range(today, None, None, "7d") == (date(2026, 11, 15), today, "7d")
    assert report_range(today, None, None, "ytd") == (date(2026, 1, 1), today, "ytd")
    assert report_range(today, None, None, None) == (None, None, "all")


# Colours the HTML report draws its chart lines and areas in (render/html.py), as RGB.
PORTFOLIO_LINE = (0x1F, 0x6F, 0xEB)
BENCHMARK_LINE = (0xF5, 0x9F, 0x00)
DRAWDOWN_AREA = (222, 82, 83)  # 0xD62728 at 80 % over white


def chromium() -> str:
    """Debian's Chromium; the test is skipped where it is not installed (`.ci/run` installs it)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium on this machine: `apt-get install chromium` runs the HTML report's browser test")
    return found


def test_html_report_is_self_contained_and_a_headless_browser_shows_its_charts(traded, tmp_path):
    import subprocess

    import numpy as np
    from matplotlib.image import imread

    page = tmp_path / "report.html"
    result = traded("report", "--html", str(page))
    assert f"Wrote the HTML report to {page}" in result.stderr
    html = page.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 2 and 'src="http' not in html and "<script" not in html
    assert "Report for main" in html and "BTC buy &amp; hold" in html

    shot = tmp_path / "shot.png"
    browser = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri(),
    ]  # fmt: skip
    subprocess.run(browser, capture_output=True, timeout=120, check=True)
    pixels = (imread(shot)[:, :, :3] * 255).round().astype(int)

    def count(colour: tuple[int, int, int]) -> int:
        return int((np.abs(pixels - np.array(colour)).max(axis=2) <= 12).sum())

    # Each chart's own colour covers a visible area: the equity line, the benchmark line, the drawdown.
    assert count(PORTFOLIO_LINE) > 500
    assert count(BENCHMARK_LINE) > 500
    assert count(DRAWDOWN_AREA) > 2000


def test_money_sums_in_sql_are_exact_integer_units_or_refused(cli, binance):
    import sqlite3

    from portfolio_cli.ledger import codec

    conn = sqlite3.connect(":memory:")
    texts = ["0.10000000", "0.20000000", "-0.30000000", "1E-7", "0E-8", "9999999999.99999999"]
    (total,) = conn.execute(
        f"select sum({codec.units_sql('t')}) from ({' union all '.join('select ? as t' for _ in texts)})", texts
    ).fetchone()
    assert codec.from_units(total) == sum(map(D, texts))  # 0.1 + 0.2 − 0.3 is 0 here, not 5.5e-17

    cli("init")
    cli("deposit", "10000000000000")  # deposits are summed as Decimals: no limit there
    cli("open", "BTC/USDT", "--qty", "1000000", "--price", "1000000", "--off-market")
    cli("close", "1", "--price", "2000000", "--off-market")  # 10^12 realized: more digits than integer units hold
    # Too large for integer units: summed again in exact decimals, and the record is named so that a
    # mistyped price can be found, instead of the portfolio being refused for good.
    result = cli("report")
    assert "note: amounts of 10 billion USDT or more" in result.stderr
    assert "(realized_pnl of trade 1," in result.stderr and "is 1000000000000.00000000 USDT" in result.stderr
    trades = cli.json("report")["trades"]
    assert trades["count"] == 1 and D(trades["largest_win"]) == D(10**12) - D(10**9) - D(2 * 10**9)  # net of fees
    # each names the record that undoes it: the close's flows their close, a deposit itself
    assert "is 1000000000000.00000000 USDT (a mistake is undone by: portfolio void close:1 --reason TEXT)" in (
        result.stderr
    )
    cli("void", "close:1", "--reason", "price typo")
    cli("void", "1", "--reason", "price typo")
    after = cli("report")
    assert "of trade 1" not in after.stderr and "portfolio void deposit:2 --reason TEXT" in after.stderr
    assert cli.json("report")["trades"]["count"] == 0


def test_a_missing_day_is_named_and_left_out_of_the_daily_statistics(traded, ledger_path):
    import sqlite3
    import statistics

    equity = {r["day"]: float(r["equity"]) for r in traded.json("history", "--every", "day")["daily"]}
    gone = day(-3).date().isoformat()
    with sqlite3.connect(ledger_path) as conn:  # the day could not be priced, say, and was never filled
        conn.execute("pragma foreign_keys = on")
        conn.execute(
            "delete from snapshot_positions where snapshot_id = (select id from snapshots where day = ?)", [gone]
        )
        conn.execute("delete from snapshots where day = ?", [gone])
    r = traded.json("report")
    assert r["range"]["missing_days"] == [gone]
    assert any(f"no snapshot of {gone}" in note for note in r["notes"])

    # By hand from the equities: the two-day return (end of −4 to end of −2) counts in the total …
    days = sorted(equity)
    flows = {day(-1).date().isoformat(): 1000.0}  # the deposit at 06:00 of day −1
    kept = [d for d in days if d != gone]
    returns = {b: (equity[b] - flows.get(b, 0)) / equity[a] - 1 for a, b in zip(kept, kept[1:], strict=False)}
    total = math.prod(1 + x for x in returns.values()) - 1
    assert r["metrics"]["total_return"] == pytest.approx(total, abs=1e-12)
    # … but not in the daily statistics: volatility, Sharpe and the best and worst day.
    two_day = day(-2).date().isoformat()
    one_day = [x for d, x in returns.items() if d != two_day]
    assert r["metrics"]["volatility"] == pytest.approx(statistics.stdev(one_day) * math.sqrt(365), abs=1e-12)
    assert r["metrics"]["sharpe"] == pytest.approx(
        statistics.mean(one_day) / statistics.stdev(one_day) * math.sqrt(365)
    )
    assert two_day not in (r["periods"]["day"]["best"]["start"], r["periods"]["day"]["worst"]["start"])

    rows = list(csv.reader(io.StringIO(traded("report", "--csv").stdout)))
    [gap_row] = [row for row in rows if row[:2] == ["range", "missing_days"]]
    assert gap_row[2] == gone and "not in volatility, Sharpe, Sortino" in gap_row[3]
    shown = traded("report")
    assert f"Missing days: {gone}" in shown.stdout and f"no snapshot of {gone}" in shown.stderr


def test_without_snapshots_the_report_reckons_from_the_records_and_a_live_valuation(cli, binance):
    cli("init", "--at", day(-2).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", at(-2, 1))  # fee 4
    cli("close", "1", "--price", "41000", "--at", at(-1, 1))  # +100, fee 4.1: net 91.9
    cli("open", "ETH/USDT", "--qty", "1", "--price", "2000")  # fee 2, still open
    binance.prices["ETH/USDT"] = D("2100")  # +100 unrealized at the live quote
    r = cli.json("report")
    assert r["range"]["daily_snapshots"] == 0
    pnl = r["pnl"]
    assert (D(pnl["realized"]), D(pnl["fees"]), D(pnl["unrealized_open"])) == (D(100), D("10.1"), D(100))
    assert D(pnl["total"]) == D(100) - D("10.1") + D(100)  # 189.9, beside the trade it came from
    assert (D(r["equity"]["start"]), D(r["equity"]["end"])) == (D(10000), D("10189.9"))
    assert r["metrics"]["total_return"] == pytest.approx(189.9 / 10000)
    assert r["trades"]["count"] == 1 and D(r["trades"]["largest_win"]) == D("91.9")
    assert sum(D(row["pnl"]) for row in r["attribution"]["asset"]) == D(pnl["total"])
    assert any("figures run from the records" in note for note in r["notes"])


def test_with_one_snapshot_history_and_report_tie_out(cli, binance):
    """One snapshot and none before it: `history` measures its row from the portfolio's start, as
    `report` does, and `report` ends at that snapshot, as `history` shows it. (History once showed
    no return and a total of 0 % while the report, valued live, said 0.96 %.)"""
    cli("init")  # 10,000 USDT
    cli("open", "BTC/USDT", "--qty", "0.1")  # at 40,000, fee 4
    binance.prices["BTC/USDT"] = D("41000")  # +100 unrealized
    cli("snapshot")  # equity 9,996 + 100 = 10,096
    binance.prices["BTC/USDT"] = D("45000")  # after the snapshot: in neither
    history = cli.json("history")
    report = cli.json("report")
    [row] = history["daily"]
    assert D(row["equity"]) == D(report["equity"]["end"]) == D("10096")
    assert D(row["pnl"]) == D(report["pnl"]["total"]) == D(96)  # 10,096 − 10,000 deposited
    assert row["return_pct"] == pytest.approx(0.96)
    assert row["cumulative_return_pct"] == pytest.approx(report["metrics"]["total_return"] * 100)
    assert report["metrics"]["total_return"] == pytest.approx(96 / 10000)
    shown = cli("history").stdout
    assert "time-weighted return 0.96 %" in shown and "96.00" in shown
