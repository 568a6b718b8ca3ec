"""History: time-weighted returns that ignore deposits, drawdown, weekly and monthly periods, charts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from portfolio_cli.engine.history import Every, days_to_backfill, history_rows
from portfolio_cli.engine.records import Snapshot
from test_snapshots import daily_open, day

BLANK = Snapshot(
    portfolio_id=1,
    day=date(2026, 3, 2),
    taken_at=datetime(2026, 3, 2, tzinfo=UTC),
    backfilled=False,
    equity=D(0),
    wallet_balance=D(0),
    free_margin=D(0),
    spot_holdings=D(0),
    margin_used=D(0),
    margin_level_pct=None,
    unrealized_pnl=D(0),
    realized_pnl=D(0),
    fees=D(0),
    liquidation_fees=D(0),
    funding=D(0),
    deposits=D(0),
    withdrawals=D(0),
)


def snap(offset: int, equity: str, deposits: str = "1000", withdrawals: str = "0") -> Snapshot:
    moment = BLANK.taken_at + timedelta(days=offset)
    return replace(
        BLANK, day=moment.date(), taken_at=moment, equity=D(equity), deposits=D(deposits), withdrawals=D(withdrawals)
    )


def test_returns_exclude_deposits_and_withdrawals_and_drawdown_follows_the_growth_index():
    rows = history_rows(
        [
            snap(0, "1000"),
            snap(1, "1100"),  # +10 %
            snap(2, "1600", deposits="1500"),  # 500 deposited: (1600 − 500) / 1100 − 1 = 0
            snap(3, "1200", deposits="1500"),  # −25 %
            snap(4, "1000", deposits="1500", withdrawals="200"),  # (1000 + 200) / 1200 − 1 = 0
        ]
    )
    assert [r.return_pct for r in rows] == [None, pytest.approx(10), pytest.approx(0), pytest.approx(-25), 0]
    assert [r.net_flows for r in rows] == [0, 0, 500, 0, -200]
    assert [r.pnl for r in rows] == [0, 100, 0, -400, 0]
    assert rows[-1].cumulative_return_pct == pytest.approx((1.1 * 0.75 - 1) * 100)
    # Peak after day 1 (index 1.1); days 3 and 4 are 25 % below it although equity fell by the withdrawal too.
    assert [round(r.drawdown_pct, 9) for r in rows] == [0, 0, 0, -25, -25]


def test_weekly_rows_chain_the_days_and_sum_flows_and_pnl():
    # 2026-03-02 is a Monday: days 0-6 are one ISO week, day 7 starts the next.
    days = [snap(0, "1000"), snap(1, "1100"), snap(6, "1210"), snap(7, "1089")]
    weekly = history_rows(days, Every.WEEK)
    assert [r.day for r in weekly] == [date(2026, 3, 8), date(2026, 3, 9)]
    assert weekly[0].return_pct == pytest.approx(21)  # 1.1 × 1.1 − 1
    assert weekly[0].pnl == 210
    assert weekly[1].return_pct == pytest.approx(-10)
    assert weekly[1].drawdown_pct == pytest.approx(-10)


def test_an_undefined_return_after_a_wiped_out_day_leaves_the_index():
    rows = history_rows([snap(0, "1000"), snap(1, "0"), snap(2, "500", deposits="1500")])
    assert rows[1].return_pct == pytest.approx(-100)
    assert rows[2].return_pct is None  # nothing to grow from


def test_days_to_backfill_start_at_the_first_day_end_the_portfolio_saw():
    created = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert days_to_backfill(created, date(2026, 3, 5), set()) == [date(2026, 3, d) for d in (1, 2, 3, 4)]
    # Created at 00:00 of 1 March: the end of 28 February is that moment, its opening balance.
    at_midnight = created.replace(hour=0)
    assert days_to_backfill(at_midnight, date(2026, 3, 3), {date(2026, 3, 2)}) == [date(2026, 2, 28), date(2026, 3, 1)]
    assert days_to_backfill(created, date(2026, 3, 10), set(), keep_days=3) == [date(2026, 3, 8), date(2026, 3, 9)]


def test_history_command_shows_the_table_and_both_charts(cli, binance):
    for k in range(-6, 0):
        daily_open(binance, "BTC/USDT", day(k), str(40000 + 1000 * (k % 3)))
    cli("init", "--at", day(-6).isoformat())
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (day(-6) + timedelta(hours=1)).isoformat())
    cli("snapshot")
    out = cli("history").stdout
    assert "History of main, by day" in out
    assert "Equity (USDT)" in out and "Drawdown (%)" in out
    assert any(ch in out for ch in "⠁⠂⠄⡀⢀⠈⠐⠠")  # braille dots of the plotted lines
    weekly = cli.json("history", "--every", "week")
    assert weekly["every"] == "week" and len(weekly["daily"]) == 8  # days −7 … −1 and today
    assert sum(D(r["pnl"]) for r in weekly["rows"]) == D(weekly["daily"][-1]["equity"]) - D(10000)
    refused = cli("history", "--every", "decade", code=2).stderr
    assert refused.startswith("error: Invalid value for '--every'") and "'day', 'week', 'month', 'quarter'" in refused
    assert "No snapshots" in cli("history", "--from", day(5).date().isoformat()).stdout
