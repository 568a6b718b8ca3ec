"""`portfolio compare`: each column is that portfolio's own report over the common range; strategies
split one portfolio's daily returns and PnL exactly."""

from __future__ import annotations

import csv
import io
import math
from decimal import Decimal as D

import pytest

from test_report import BTC, ETH, at
from test_snapshots import daily_open, day, ms


@pytest.fixture
def three(cli, binance):
    """a (from day −5, three strategies), b (from day −3, leveraged), c (from day −2, holds BTC)."""
    for k in BTC:
        daily_open(binance, "BTC/USDT", day(k), BTC[k])
        daily_open(binance, "ETH/USDT", day(k), ETH[k])
    price = D("43560")
    binance.ohlc[("BTC/USDT", "1m", ms(day(0)))] = (price, price, price, price)
    binance.prices.update({"BTC/USDT": price, "ETH/USDT": D("1950")})
    cli("init", "a", "--balance", "10000", "--at", day(-5).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--strategy", "trend", "-p", "a", "--at", at(-5, 1))
    cli("open", "ETH/USDT", "--qty", "1", "--price", "2000", "--strategy", "swing", "-p", "a", "--at", at(-4, 2))
    cli("open", "BTC/USDT", "--qty", "0.05", "--price", "39600", "-p", "a", "--at", at(-3, 1))
    cli("close", "1", "--price", "41000", "-p", "a", "--at", at(-3, 12))
    cli("close", "2", "--price", "1900", "-p", "a", "--at", at(-2, 1))
    cli("deposit", "1000", "-p", "a", "--at", at(-1, 6))
    cli("init", "b", "--balance", "5000", "--at", day(-3).isoformat())
    cli(
        "open", "ETH/USDT", "--qty", "2", "--price", "2050", "--short", "--leverage", "3",
        "--strategy", "swing", "-p", "b", "--at", at(-3, 2),
    )  # fmt: skip
    cli("init", "c", "--balance", "2000", "--at", day(-2).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.02", "--price", "39600", "-p", "c", "--at", at(-2, 3))
    cli("snapshot", "--all")
    return cli


def test_each_column_is_the_portfolios_own_report_over_the_common_range(three):
    result = three.json("compare", "a", "b", "c")
    common = [day(-2).date().isoformat(), day(0).date().isoformat()]  # c began last
    assert [result["range"]["first_day"], result["range"]["last_day"]] == common
    assert [c["name"] for c in result["columns"]] == ["a", "b", "c"]
    for column in result["columns"]:
        own = three.json("report", "-p", column["name"], "--from", common[0], "--to", common[1])
        assert column["metrics"] == own["metrics"]
        assert column["trades"] == own["trades"]
        assert D(column["total_pnl"]) == D(own["pnl"]["total"])
        assert (D(column["fees"]), D(column["funding"])) == (D(own["pnl"]["fees"]), D(own["pnl"]["funding"]))
        growth = [g["value"] for g in column["growth"]]
        assert growth[0] == 100 and growth[-1] == pytest.approx(100 * (1 + own["metrics"]["total_return"]))


def test_two_portfolios_compare_over_their_own_common_range_and_the_benchmark_is_a_column(three):
    result = three.json("compare", "a", "b", "--benchmark")
    assert result["range"]["first_day"] == day(-3).date().isoformat()
    names = [c["name"] for c in result["columns"]]
    assert names == ["a", "b", "BTC buy & hold (a's cash flows)"]
    own = three.json("report", "-p", "a", "--from", day(-3).date().isoformat())
    assert result["columns"][2]["metrics"] == own["benchmark"]["metrics"]
    assert result["columns"][2]["trades"] is None


def test_the_table_highlights_the_best_of_each_row_and_draws_one_chart(three):
    out = three("compare", "a", "b", "c").stdout
    assert f"Portfolios compared, {day(-2).date()} to {day(0).date()}" in out
    assert "Growth of 100 (time-weighted)" in out and "Sharpe" in out and "profit factor" in out
    rows = list(csv.reader(io.StringIO(three("compare", "a", "b", "c", "--csv").stdout)))
    assert rows[0] == ["metric", "a", "b", "c"]
    assert rows[-1][0] == "funding" and len(rows) == 15


def test_strategies_split_the_portfolios_returns_and_pnl_exactly(three):
    result = three.json("compare", "--by", "strategy", "-p", "a")
    report = three.json("report", "-p", "a")
    names = [c["name"] for c in result["columns"]]
    assert names == ["swing", "trend", "(untagged)"]
    by_name = {c["name"]: c for c in result["columns"]}
    assert sum(D(c["total_pnl"]) for c in result["columns"]) == D(report["pnl"]["total"])
    assert D(by_name["trend"]["total_pnl"]) == D("91.9")  # 100 realized less 4 + 4.1 fees
    assert D(by_name["swing"]["total_pnl"]) == D("-103.9")
    assert by_name["trend"]["trades"]["count"] == 1 and by_name["trend"]["trades"]["win_rate"] == 1.0
    # Each day, the strategies' shares of the return add up to the portfolio's own return.
    curves = [[g["value"] for g in c["growth"]] for c in result["columns"]]
    shares = [sum(curve[i] / curve[i - 1] - 1 for curve in curves) for i in range(1, len(curves[0]))]
    assert math.prod(1 + s for s in shares) - 1 == pytest.approx(report["metrics"]["total_return"])
    assert by_name["trend"]["metrics"]["money_weighted_return"] is None
    assert "no cash flows or equity of its own" in result["undefined"]["columns.0.metrics.money_weighted_return"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("a",), 2, "name two or more portfolios (or one with --benchmark)"),
        (("a", "a"), 2, "a portfolio is named twice"),
        (("a", "b", "--by", "asset"), 2, "Invalid value for '--by': 'asset' is not one of 'strategy'"),
        (("a", "--by", "strategy"), 2, "--by strategy compares inside one portfolio"),
        (("a", "b", "--to", day(-4).date().isoformat()), 4, "b has fewer than two daily snapshots in the range"),
        (("a", "nope"), 4, "no portfolio named 'nope'"),
    ],
)
def test_refusals(three, args, code, message):
    result = three("compare", *args, code=code)
    assert result.stderr.startswith(f"error: {message}") and "Traceback" not in result.stderr


HOSTILE = ("=cmd|' /C calc'!A0", "@SUM(1+1)", "+1+1", "-2+3")


def test_every_csv_the_tool_writes_makes_formulas_inert_and_leaves_numbers(cli, binance):
    """Strategy tags and notes are the trader's text; report, compare and every export write them
    through one function, so no cell a spreadsheet would run as a formula comes out."""
    for k in BTC:
        daily_open(binance, "BTC/USDT", day(k), BTC[k])
    cli("init", "--balance", "10000", "--at", day(-5).isoformat())
    for n, tag in enumerate(HOSTILE, 1):
        cli(
            "open", "BTC/USDT", "--qty", "0.01", "--price", "40000", "--strategy", tag, "--note", tag, "--at", at(-5, n)
        )
        cli("close", str(n), "--price", "41000", "--at", at(-3, n))
    cli("snapshot")
    outputs = {
        "report": cli("report", "--csv", "--offline").stdout,
        "compare": cli("compare", "--by", "strategy", "--csv", "--offline").stdout,
        **{kind: cli("export", kind).stdout for kind in ("trades", "cashflows", "positions", "snapshots")},
        "tax": cli("export", "tax", "--year", str(day(-3).year)).stdout,
    }
    for name, text in outputs.items():
        cells = csv_cells(text)
        assert cells, name
        live = [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r")) or (c[0] == "-" and not _number(c))]
        assert live == [], name
    assert "'=cmd|' /C calc'!A0" in outputs["report"] and "'@SUM(1+1)" in outputs["compare"]
    assert any(c.startswith("-") and _number(c) for c in csv_cells(outputs["report"]))  # negatives stay numbers


def _number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def csv_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row if cell]
