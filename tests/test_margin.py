"""Margin figures and liquidation prices against hand calculations (DESIGN §3), the property that an
isolated position never loses more than its margin, and the margin commands end to end."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ledger_rows
from portfolio_cli.config import Trading
from portfolio_cli.engine.margin import (
    MarginState,
    isolated_liquidation_price,
    liquidation_settlement,
    margin_state,
)
from portfolio_cli.engine.records import CloseReason, Side
from portfolio_cli.engine.triggers import first_trigger
from portfolio_cli.money import q8
from portfolio_cli.prices.brackets import bracket_source

BTC = bracket_source(Trading())("BTC/USDT")  # 0.4 % up to 50,000 notional, then brackets with a cum


@pytest.mark.parametrize(
    ("side", "leverage", "expected"),
    [
        # long: e·(1 − 1/L)/(1 − mmr); short: e·(1 + 1/L)/(1 + mmr); e = 40,000, bracket 1: mmr 0.004
        (Side.LONG, 10, D("36144.57831325")),
        (Side.LONG, 5, D("32128.51405622")),
        (Side.LONG, 2, D("20080.32128514")),
        (Side.LONG, 1, None),  # a 1x long cannot be liquidated
        (Side.SHORT, 10, D("43824.70119522")),
        (Side.SHORT, 2, D("59760.95617530")),
        (Side.SHORT, 1, D("79681.27490040")),
    ],
)
def test_isolated_liquidation_price(side, leverage, expected):
    qty, entry = D("0.1"), D(40000)
    assert isolated_liquidation_price(side, qty, entry, qty * entry / leverage, BTC) == expected


@pytest.mark.parametrize(
    ("args", "leverage", "liq", "distance", "margin"),
    [
        (["--leverage", "10"], 10, "36144.57831325", "9.64", "400"),  # (400 − 4000) / (0.0004 − 0.1)
        (["--leverage", "5", "--short"], 5, "47808.76494024", "19.52", "800"),  # (800 + 4000) / 0.1004
        # cross: WB = the cross wallet 1000 − fee 2: (998 − 4000) / (0.0004 − 0.1)
        (["--leverage", "20", "--cross"], 20, "30140.56224900", "24.65", "200"),
        (["--leverage", "20", "--cross", "--short"], 20, "49780.87649402", "24.45", "200"),
    ],
)
def test_margin_command_per_position_and_account(cli, binance, args, leverage, liq, distance, margin):
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.1", *args, "--force")
    report = cli.json("margin")
    [row] = report["account"]["positions"]
    assert D(row["liquidation_price"]) == D(liq)
    assert D(row["distance_pct"]) == D(distance)
    assert D(row["margin"]) == D(margin)
    assert D(row["maintenance_margin"]) == D(16)  # 0.1 × 40000 × 0.004
    fee = D(4000) * D("0.0005")
    level = q8((D(1000) - fee) / D(margin) * 100).quantize(D("0.01"))
    assert D(report["account"]["margin_level_pct"]) == level
    assert report["account"]["state"] == margin_state(level)


def test_margin_states():
    assert margin_state(None) is MarginState.NONE
    assert margin_state(D(200)) is MarginState.OK
    assert margin_state(D("199.99")) is MarginState.WARNING
    assert margin_state(D("149.99")) is MarginState.ALERT
    assert margin_state(D("109.99")) is MarginState.CRITICAL


def test_stress_table_liquidates_an_isolated_long_when_btc_falls(cli, binance):
    cli("init", "--balance", "10000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10")  # liq 36,144.58 (−9.64 %)
    cli("open", "ETH/USDT", "--qty", "1", "--short", "--leverage", "5")  # liq 2,388.06 (+19.40 %)
    stress = {row["btc_move_pct"]: row for row in cli.json("margin")["stress"]}
    assert stress[-10]["liquidated"] == [1]
    assert stress[-30]["liquidated"] == [1]
    assert stress[10]["liquidated"] == []
    assert stress[20]["liquidated"] == [2]  # ETH moves 1:1 with no daily history
    # At −30 %: the BTC long loses its 400 margin, the ETH short gains 1 × 600.
    assert D(stress[-30]["equity"]) == D(10000) - D(2) - D(1) - D(400) + D(600)


def test_add_and_remove_isolated_margin_moves_the_liquidation_price(cli, binance, ledger_path):
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10")
    update = cli.json("add-margin", "1", "100")
    # (q·e − Mi) / (q·(1 − mmr)) with Mi = 500: (4000 − 500) / 0.0996
    assert D(update["liquidation_price"]) == D("35140.56224900")
    assert D(update["free_margin"]) == D(1000) - D(2) - D(500)
    cli("remove-margin", "1", "150", code=1)  # only the 100 added can come back
    update = cli.json("remove-margin", "1", "100")
    assert D(update["liquidation_price"]) == D("36144.57831325")
    assert len(ledger_rows(ledger_path, "margin_changes")) == 2


def test_switching_to_cross_releases_added_margin(cli, binance):
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10")
    cli("add-margin", "1", "100")
    update = cli.json("margin-mode", "1", "--cross")
    assert update["mode"] == "cross" and D(update["margin"]) == D(400) and D(update["added_margin"]) == 0
    cli("margin-mode", "1", "--cross", code=2)  # already cross
    cli("add-margin", "1", "50", code=1)  # cross positions share the account's margin
    assert cli.json("margin-mode", "1", "--isolated")["mode"] == "isolated"


def test_spot_positions_have_no_margin_to_change(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")
    result = cli("add-margin", "1", "10", code=2)
    assert "spot position" in result.stderr


prices = st.decimals(min_value=D(1), max_value=D(100000), places=2)


@settings(suppress_health_check=[HealthCheck.too_slow])  # nine strategies: slow to draw on a loaded machine
@given(
    side=st.sampled_from(list(Side)),
    qty=st.decimals(min_value=D("0.001"), max_value=D(100), places=3),
    entry=prices,
    leverage=st.integers(min_value=2, max_value=125),
    extra=st.decimals(min_value=D(0), max_value=D(1000), places=2),
    open_=prices,
    low=prices,
    high=prices,
    stop_distance=st.one_of(st.none(), st.decimals(min_value=D("0.001"), max_value=D("0.9"), places=3)),
)
def test_an_isolated_position_never_loses_more_than_its_margin(
    side, qty, entry, leverage, extra, open_, low, high, stop_distance
):
    """Whatever the candle (gaps included) and wherever the stop, the close `check` books loses at
    most the position's margin: gross PnL minus the exit or liquidation fee."""
    low, high = min(low, open_, high), max(high, open_, low)
    margin = qty * entry / leverage + extra
    liq = isolated_liquidation_price(side, qty, entry, margin, BTC)
    stop = None if stop_distance is None else q8(entry * (1 - side.sign * stop_distance))
    trigger = first_trigger(side, open_, high, low, stop=stop, liquidation=liq)
    if trigger is None:
        return
    if trigger.reason is CloseReason.LIQUIDATION:
        gross, fee = liquidation_settlement(side, qty, entry, margin, trigger.price)
        assert fee >= 0
    else:
        gross = side.sign * qty * (trigger.price - entry)
        fee = qty * trigger.price * D("0.0005")  # the margin taker fee, below the maintenance rate
    assert -(gross - fee) <= margin + D("0.00000001")


def test_moving_to_isolated_past_the_liquidation_price_is_refused(cli, binance, ledger_path):
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "20", "--cross")
    binance.prices["BTC/USDT"] = D(38000)  # isolated 20x would liquidate at 40000 × 0.95 / 0.996 = 38152.61
    result = cli("margin-mode", "1", "--isolated", code=1)
    assert "liquidated at once" in result.stderr and "isolated liquidation price 38,152.61 USDT" in result.stderr
    assert ledger_rows(ledger_path, "margin_changes") == []
