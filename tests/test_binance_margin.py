"""Binance's USDⓈ-M formulas by hand: brackets, liquidation prices (isolated and cross), margin ratio,
the leverage cap, and which rule acted in `check` (a Binance liquidation or a margin call by rule).

BTCUSDT's brackets in the bundled snapshot (notional cap, max leverage, mmr, cum):
1: 50,000 125x 0.4 % 0 · 2: 600,000 100x 0.5 % 50 · 3: 3,000,000 75x 0.65 % 950 · 4: 12,000,000 50x 1 % 11,450 ·
5: 70,000,000 25x 2 % 131,450 … ETHUSDT: 1: 50,000 100x 0.5 % 0 · 2: 500,000 75x 0.65 % 75 …
Binance: LP = (WB − TMM1 + UPNL1 + cum − s·q·e) / (q·mmr − s·q), the bracket at q·LP.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from conftest import ledger_rows
from portfolio_cli.config import Trading
from portfolio_cli.engine.accounting import build_lots
from portfolio_cli.engine.brackets import build_table, parse_leverage_brackets
from portfolio_cli.engine.futures import liquidation_price
from portfolio_cli.engine.margin import AccountRules, MarginState, assess_margin, margin_state
from portfolio_cli.engine.records import CashFlow, FlowKind, Kind, MarginMode, Side, Trade
from portfolio_cli.engine.valuation import Mark, value_portfolio
from portfolio_cli.prices.brackets import bracket_source, bundled_snapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BRACKETS = bracket_source(Trading())
BTC, ETH = BRACKETS("BTC/USDT"), BRACKETS("ETH/USDT")


def test_the_bundled_snapshot_is_dated_and_continuous():
    as_of, tables = bundled_snapshot()
    assert datetime.strptime(as_of, "%Y-%m-%d")
    for table in tables.values():
        for low, high in zip(table.brackets, table.brackets[1:], strict=False):
            # MM is the same either side of a bracket edge: cum absorbs the rate step
            assert high.floor == low.cap
            assert low.cap * low.mmr - low.cum == high.floor * high.mmr - high.cum


@pytest.mark.parametrize(
    ("notional", "mm", "bracket", "leverage"),
    [
        (D(30000), D(120), 1, 125),  # 30,000 × 0.4 %
        (D(50000), D(200), 1, 125),  # the cap belongs to its bracket
        (D(60000), D(250), 2, 100),  # 60,000 × 0.5 % − 50
        (D(1200000), D(6850), 3, 75),  # 1,200,000 × 0.65 % − 950
        (D(20000000), D(268550), 5, 25),  # 20,000,000 × 2 % − 131,450
    ],
)
def test_maintenance_margin_from_the_bracket(notional, mm, bracket, leverage):
    assert BTC.maintenance_margin(notional) == mm
    assert BTC.at(notional).number == bracket
    assert BTC.max_leverage(notional) == leverage


@pytest.mark.parametrize(
    ("qty", "entry", "leverage", "long_liq", "short_liq"),
    [
        # bracket 1, WB = IM = 3,000: long (3,000 − 30,000) / (0.002 − 0.5) = 54,216.87;
        # short (3,000 + 30,000) / (0.002 + 0.5) = 65,737.05
        (D("0.5"), D(60000), 10, D("54216.86746988"), D("65737.05179283")),
        # bracket 3 (maintenance amount 950), WB = 24,000: long (24,000 + 950 − 1,200,000) / (0.13 − 20)
        # = 59,136.89; short (24,000 + 950 + 1,200,000) / (0.13 + 20) = 60,851.96
        (D(20), D(60000), 50, D("59136.88978359"), D("60851.96224540")),
        # bracket 5 (20 M at 20x, maintenance amount 131,450), WB = 1,000,000: long
        # (1,000,000 + 131,450 − 20,000,000) / (333.33·0.02 − 333.33) = 57,760.87 — Binance's 57,761;
        # short (1,000,000 + 131,450 + 20,000,000) / (333.33 × 1.02) = 62,151.32
        (D("333.33333333"), D(60000), 20, D("57760.86734693"), D("62151.32352942")),
    ],
)
def test_isolated_liquidation_in_three_brackets(qty, entry, leverage, long_liq, short_liq):
    margin = qty * entry / leverage
    assert liquidation_price(Side.LONG, qty, entry, BTC, margin) == long_liq
    assert liquidation_price(Side.SHORT, qty, entry, BTC, margin) == short_liq


def test_the_bracket_is_taken_at_the_liquidation_price():
    """201 BTC @ 60,000 = 12,060,000 at 25x sits in bracket 5 (2 %, 131,450) at entry; solved in bracket 5
    its LP would be 58,108.18, a notional of 11.68 M — bracket 4's range. In bracket 4 (1 %, 11,450):
    (482,400 + 11,450 − 12,060,000) / (201·0.01 − 201) = 11,566,150 / 198.99 = 58,124.28, notional 11.68 M."""
    qty, entry = D(201), D(60000)
    assert BTC.at(qty * entry).number == 5
    liq = liquidation_price(Side.LONG, qty, entry, BTC, qty * entry / 25)
    assert liq == D("58124.27760189")
    assert BTC.at(qty * liq).number == 4


def test_a_long_that_cannot_be_liquidated_has_no_price():
    assert liquidation_price(Side.LONG, D(1), D(60000), BTC, D(60000)) is None  # 1x long


def mark(symbol: str, price: D) -> Mark:
    return Mark(symbol, price, price, T0, "test")


def cross_account(btc: D, eth: D):
    """The issue's worked case: wallet 10,000, BTC long 0.5 @ 60,000 and ETH short 10 @ 3,000, 10x cross."""
    trades = [
        Trade(1, "BTC/USDT", Side.LONG, Kind.MARGIN, MarginMode.CROSS, 10, D("0.5"), D(60000), D(60000), D(0), T0),
        Trade(2, "ETH/USDT", Side.SHORT, Kind.MARGIN, MarginMode.CROSS, 10, D(10), D(3000), D(3000), D(0), T0),
    ]
    flows = [CashFlow(1, FlowKind.DEPOSIT, D(10000), T0)]
    marks = {"BTC/USDT": mark("BTC/USDT", btc), "ETH/USDT": mark("ETH/USDT", eth)}
    return value_portfolio(flows, build_lots(trades, []), marks, BRACKETS)


def test_cross_liquidation_prices_of_two_positions():
    v = cross_account(D(60000), D(3000))
    by_symbol = {p.symbol: p for p in v.positions}
    # BTC: WB 10,000, TMM1 = ETH's MM 30,000 × 0.5 % = 150, UPNL1 0:
    # (10,000 − 150 − 30,000) / (0.5 × 0.004 − 0.5) = 40,461.85 (Binance: 40,462)
    assert by_symbol["BTC/USDT"].liquidation_price == D("40461.84738956")
    # ETH: TMM1 = BTC's MM 30,000 × 0.4 % = 120: (10,000 − 120 + 30,000) / (10 × 0.005 + 10) = 3,968.16
    assert by_symbol["ETH/USDT"].liquidation_price == D("3968.15920398")


def test_margin_ratio_at_two_marks_and_the_account_rules_beside_it():
    at_entry = cross_account(D(60000), D(3000))
    # MM 120 + 150 over the margin balance 10,000
    assert at_entry.cross_maintenance_margin == D(270)
    assert at_entry.cross_margin_ratio_pct == D("2.70")
    # the account rule's margin level: equity 10,000 over margin used 6,000 = 166.67 %: a warning
    assert at_entry.margin_level_pct == D("166.67")
    assert margin_state(at_entry.margin_level_pct) is MarginState.WARNING

    later = cross_account(D(50000), D(3300))
    # uPnL −5,000 (BTC) − 3,000 (ETH) = −8,000: balance 2,000; MM 25,000 × 0.4 % + 33,000 × 0.5 % = 265
    assert later.cross_margin_balance == D(2000)
    assert later.cross_maintenance_margin == D(265)
    assert later.cross_margin_ratio_pct == D("13.25")
    account = assess_margin(later, BRACKETS)
    assert account.state is MarginState.CRITICAL  # the rule's level 2,000 / 6,000 = 33.33 %
    switched_off = assess_margin(later, BRACKETS, AccountRules(None, None, None))
    assert switched_off.state is MarginState.OK  # every account rule off: only Binance's ratio remains


def test_isolated_margin_ratio():
    trade = Trade(1, "BTC/USDT", Side.LONG, Kind.MARGIN, MarginMode.ISOLATED, 10, D("0.5"), D(60000), D(60000), D(0), T0)
    flows = [CashFlow(1, FlowKind.DEPOSIT, D(10000), T0)]
    v = value_portfolio(flows, build_lots([trade], []), {"BTC/USDT": mark("BTC/USDT", D(56000))}, BRACKETS)
    [p] = v.positions
    # MM 28,000 × 0.4 % = 112 over margin 3,000 + uPnL −2,000
    assert p.maintenance_margin == D(112)
    assert p.margin_ratio_pct == D("11.20")
    # the isolated margin is out of the cross wallet
    assert v.cross_wallet_balance == D(7000)


def test_a_table_from_a_binance_answer_and_a_broken_one():
    payload = [
        {
            "symbol": "XUSDT",
            "brackets": [
                {"bracket": 1, "initialLeverage": 50, "notionalCap": 5000, "notionalFloor": 0, "maintMarginRatio": 0.01},
                {"bracket": 2, "initialLeverage": 20, "notionalCap": 25000, "notionalFloor": 5000, "maintMarginRatio": 0.025},
            ],
        }
    ]
    table = parse_leverage_brackets(payload, "test")["XUSDT"]
    assert table.brackets[1].cum == D(75)  # 5,000 × (2.5 % − 1 %)
    with pytest.raises(ValueError, match="not where bracket 1 ends"):
        build_table("X", [{"notionalFloor": 0, "notionalCap": 10, "initialLeverage": 5, "maintMarginRatio": 0.01},
                          {"notionalFloor": 20, "notionalCap": 30, "initialLeverage": 2, "maintMarginRatio": 0.02}], "t")


# through the CLI


def test_leverage_above_the_bracket_maximum_is_refused(cli, binance, ledger_path):
    cli("init", "--balance", "100000")
    # 30 BTC × 40,000 = 1,200,000 notional: bracket 3, at most 75x (the 1.2 M at 100x)
    result = cli("open", "BTC/USDT", "--qty", "30", "--leverage", "100", "--force", code=1)
    assert "bracket 3" in result.stderr and "75x" in result.stderr and "100x" in result.stderr
    assert ledger_rows(ledger_path, "trades") == []
    cli("open", "BTC/USDT", "--qty", "30", "--leverage", "75")
    [row] = cli.json("margin")["account"]["positions"]
    assert row["bracket"] == 3 and D(row["maintenance_margin"]) == D(6850)  # 1.2 M × 0.65 % − 950


def test_brackets_from_a_file_the_trader_saved_and_from_the_config(cli, binance, tmp_path, monkeypatch):
    saved = tmp_path / "brackets.json"
    saved.write_text(json.dumps([{"symbol": "BTCUSDT", "brackets": [
        {"bracket": 1, "initialLeverage": 20, "notionalCap": 100000, "notionalFloor": 0, "maintMarginRatio": 0.01, "cum": 0},
        {"bracket": 2, "initialLeverage": 10, "notionalCap": 1000000, "notionalFloor": 100000, "maintMarginRatio": 0.025,
         "cum": 1500},
    ]}]))
    monkeypatch.setenv("PORTFOLIO_TRADING__BRACKETS_FILE", str(saved))
    cli("init", "--balance", "10000")
    result = cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "25", code=1)
    assert "20x" in result.stderr and "brackets.json" in result.stderr
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "20")
    [row] = cli.json("margin")["account"]["positions"]
    assert D(row["maintenance_margin"]) == D(40)  # 4,000 × 1 %

    config = tmp_path / "portfolio.toml"
    config.write_text(
        '[[trading.brackets."ETH/USDT"]]\ncap = 10000\nmax_leverage = 10\nmmr = 0.02\n'
        '[[trading.brackets."ETH/USDT"]]\ncap = 100000\nmax_leverage = 5\nmmr = 0.05\n'
    )
    monkeypatch.setenv("PORTFOLIO_CONFIG", str(config))
    assert "10x" in cli("open", "ETH/USDT", "--qty", "1", "--leverage", "11", code=1).stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    monkeypatch.setenv("PORTFOLIO_TRADING__BRACKETS_FILE", str(broken))
    assert "brackets_file" in cli("value", code=3).stderr


def cross_long(cli):
    """Balance 1,000; BTC long 0.1 @ 40,000 at 20x cross: IM 200, fee 2, cross wallet 998.
    Binance's LP (998 − 4,000) / (0.1 × 0.004 − 0.1) = 30,140.56; the rule's 110 % level is reached
    where (998 + u) / 200 = 1.1, u = −778: at 32,220."""
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "20", "--cross", "--force")


def check_events(cli, code: int) -> list[dict]:
    result = cli("check", "--json", code=code)
    return json.loads(result.stdout)["portfolios"][0]["events"]


def test_the_account_rule_calls_margin_before_binance_would_liquidate(cli, binance, ledger_path):
    cross_long(cli)
    binance.prices["BTC/USDT"] = D(32000)
    [event] = [e for e in check_events(cli, 12) if e["kind"] in ("margin_call", "liquidation")]
    assert event["kind"] == "margin_call" and "margin call by rule" in event["message"]
    [trade] = [t for t in cli.json("trades") if t["status"] == "closed"]
    assert trade["closed_by"] == "margin_call"
    assert D(trade["realized_pnl"]) == D(-800)  # 0.1 × (32,000 − 40,000), with the taker fee 1.6
    assert any(e["action"] == "close trade (margin_call)" for e in _audit(ledger_path))


def test_with_the_rule_off_binance_liquidates_at_a_margin_ratio_of_100(cli, binance, ledger_path, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_MARGIN_RULES__MARGIN_CALL_PCT", "off")
    cross_long(cli)
    binance.prices["BTC/USDT"] = D(32000)  # ratio 12.8 / 198 = 6.46 %: nothing happens
    assert [e for e in check_events(cli, 11) if e["kind"] in ("margin_call", "liquidation")] == []
    binance.prices["BTC/USDT"] = D(30100)
    # balance 998 − 990 = 8 ≤ MM 0.1 × 30,100 × 0.4 % = 12.04: liquidated at the mark; the clearance
    # fee 0.1 × 30,100 × 1.25 % = 37.63 is capped at the 8 left, so the account ends at 0
    [event] = [e for e in check_events(cli, 12) if e["kind"] == "liquidation"]
    assert "Binance liquidation" in event["message"]
    assert D(cli.json("value")["valuation"]["equity"]) == 0
    assert any(e["action"] == "close trade (liquidation)" for e in _audit(ledger_path))


def _audit(path) -> list[dict]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("select * from audit_log")]
