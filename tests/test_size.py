"""`portfolio size`: quantity from risk, capped, with the binding cap named."""

from __future__ import annotations

from decimal import Decimal as D

import pytest


@pytest.mark.usefixtures("default_risk_rules")
def test_risk_sizing_capped_by_allocation_for_spot(cli, binance):
    cli("init", "--balance", "10000")
    size = cli.json("size", "BTC/USDT", "--entry", "40000", "--stop", "39000", "--risk", "1")
    caps = {c["name"]: D(c["qty"]) for c in size["caps"]}
    assert caps["risk"] == D("0.1")  # 10000 × 1 % ÷ 1000
    assert caps["allocation"] == D("0.025")  # 10 % of equity ÷ 40000
    assert size["bound_by"] == "allocation" and D(size["qty"]) == D("0.025")
    assert D(size["risk"]) == D(25)


@pytest.mark.usefixtures("default_risk_rules")
def test_leverage_lets_the_risk_cap_bind(cli, binance):
    cli("init", "--balance", "10000")
    size = cli.json("size", "BTC/USDT", "--entry", "40000", "--stop", "39000", "--leverage", "10")
    assert size["bound_by"] == "risk" and D(size["qty"]) == D("0.1")  # default risk 1 %
    assert D(size["margin"]) == D(400) and D(size["risk"]) == D(100)
    out = cli("size", "BTC/USDT", "--entry", "40000", "--stop", "39000", "--leverage", "10").stdout
    assert "Bound by" in out and "risk ◀" in out


def test_free_margin_cap_keeps_a_five_percent_buffer(cli, binance):
    cli("init", "--balance", "1000")
    size = cli.json("size", "BTC/USDT", "--entry", "40000", "--stop", "39000", "--risk", "10")
    assert size["bound_by"] == "free margin"
    # 95 % of 1000 ÷ (40000 + 0.1 % fee), rounded down to the 0.00001 lot step
    assert D(size["qty"]) == D("0.02372")


def test_short_sizing_uses_the_current_price_by_default(cli, binance):
    cli("init", "--balance", "10000")
    size = cli.json("size", "ETH/USDT", "--stop", "2100", "--short", "--leverage", "5")
    assert D(size["entry"]) == D(2000) and size["side"] == "short" and size["kind"] == "margin"
    assert D(size["qty"]) == D(1)  # 100 ÷ |2000 − 2100|


@pytest.mark.parametrize(
    "args",
    [
        ["--entry", "40000", "--stop", "41000"],  # a long's stop above the entry
        ["--entry", "40000", "--stop", "40000"],  # equal to the entry
        ["--entry", "40000", "--stop", "39000", "--short"],  # a short's stop below
        ["--entry", "40000", "--stop", "39000", "--risk", "0"],
        ["--entry", "40000", "--stop", "39000", "--leverage", "200"],
    ],
)
def test_invalid_stops_and_figures_are_refused(cli, binance, args):
    cli("init")
    result = cli("size", "BTC/USDT", *args, code=2)
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
