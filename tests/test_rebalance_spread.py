"""Rebalancing that spreads a top-up, the to-target mode and wash-sale avoidance: the planner against
hand-computed plans, then the wash-sale rule and the tax method's lot order end to end."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from portfolio_cli.engine.market import MarketRules
from portfolio_cli.engine.rebalance import CASH, Account, Holding, RebalanceTargets, plan_rebalance
from portfolio_cli.engine.rules import Exposure, RiskLimits

OPEN_LIMITS = RiskLimits(D(10), D("0.1"), D(100), D(100), 50, 50, 1, 125, D(200), D(10), D(100))
FEE = D("0.001")


def holding(asset: str, price: str, qty: str) -> Holding:
    cost = D(price) * D(qty)
    lots = ((D(qty), Exposure(f"{asset}/USDT", asset, cost, cost)),)
    return Holding(asset, D(price), cost, D(qty), MarketRules(f"{asset}/USDT", D("0.00001"), D("0.00001"), D(10)), lots)


# After a top-up, equity 10,000: BTC 30 %, ETH 20 %, SOL 4 %, cash 46 %; targets 40 / 30 / 10 / 20 ± 5.
def holdings(btc: str, eth: str, sol: str) -> dict[str, Holding]:
    """BTC at 50,000, ETH at 2,000 and SOL at 100, these quantities of each."""
    return {"BTC": holding("BTC", "50000", btc), "ETH": holding("ETH", "2000", eth), "SOL": holding("SOL", "100", sol)}


HOLDINGS = holdings("0.06", "1", "4")
ACCOUNT = Account(D(10000), D(4600), D(4600), D(0), tuple(e for h in HOLDINGS.values() for _, e in h.lots))
WEIGHTS = {"BTC": D(40), "ETH": D(30), "SOL": D(10), CASH: D(20)}


def plan(**options):
    no_buys = options.pop("no_buys", None)
    targets = RebalanceTargets(WEIGHTS, D(5), **options)
    return plan_rebalance(ACCOUNT, HOLDINGS, targets, FEE, D(0), OPEN_LIMITS, no_buys=no_buys)


def test_a_top_up_is_spread_by_the_gaps_to_target():
    p = plan()
    # Each asset first to just inside its band (target − 4.5): BTC +550, ETH +550, SOL +150 USDT. Cash
    # would still be 33.5 %: 900 USDT more to bring it to 24.5 %. Every gap to target is 4.5 % (450
    # USDT), so each asset takes 900 × 450 / 1,350 = 300 — none passes its target while another is
    # short. (Filling the furthest-below asset first gave BTC all 900: 44.5 %, drift after 18.)
    assert [(t.asset, t.buy, t.qty) for t in p.trades] == [
        ("BTC", True, D("0.017")),  # 850 USDT
        ("ETH", True, D("0.425")),  # 850
        ("SOL", True, D("4.5")),  # 450
    ]
    assert p.fees == D("0.85") + D("0.85") + D("0.45")
    equity = D(10000) - p.fees  # 9,997.85
    after = {w.asset: w.weight_pct for w in p.after}
    assert after == {
        "BTC": D(3850) / equity * 100,  # 38.508 %
        "ETH": D(2850) / equity * 100,  # 28.506 %
        "SOL": D(850) / equity * 100,  # 8.502 %
        CASH: (D(4600) - D(2150) - p.fees) / equity * 100,  # 24.484 %
    }
    # Σ|weight − target|: 52 before; after, each asset 1.5 under its target and cash 4.48 over.
    assert p.drift_before == D(52)
    assert p.drift_after == sum((abs(after[a] - WEIGHTS[a]) for a in WEIGHTS), D(0))
    assert D("8.96") < p.drift_after < D("8.97")
    assert p.skipped == ()


def test_to_target_mode_trades_every_asset_to_its_target():
    p = plan(to_target=True)
    # BTC +1,000, ETH +1,000, SOL +600: cash 4,600 − 2,600 − 2.6 of fees.
    assert [(t.asset, t.qty) for t in p.trades] == [("BTC", D("0.02")), ("ETH", D("0.5")), ("SOL", D(6))]
    assert p.cash_after == D(2000) - D("2.6")
    assert p.drift_after < D("0.05")  # only the fees keep it off 0


def test_to_target_does_nothing_while_everything_is_inside_its_band():
    inside = holdings("0.078", "1.4", "9")
    account = Account(D(10000), D(2400), D(2400), D(0), tuple(e for h in inside.values() for _, e in h.lots))
    p = plan_rebalance(account, inside, RebalanceTargets(WEIGHTS, D(5), to_target=True), FEE, D(0), OPEN_LIMITS)
    assert p.trades == ()  # 39 / 28 / 9 / 24: every weight within ± 5


def test_a_sell_down_is_spread_by_the_excess_over_target():
    heavy = holdings("0.1", "1.75", "10")
    # BTC 50 %, ETH 35 %, SOL 10 %, cash 5 % (a withdrawal left too little cash).
    account = Account(D(10000), D(500), D(500), D(0), tuple(e for h in heavy.values() for _, e in h.lots))
    p = plan_rebalance(account, heavy, RebalanceTargets(WEIGHTS, D(5)), FEE, D(0), OPEN_LIMITS)
    # BTC is sold to 44.5 % (−550); ETH (35 %) and SOL (10 %) are inside. Cash is then 10.5 %: 500
    # USDT short of 15.5 %. Over target: BTC 4.5 % (450), ETH 5 % (500): BTC 500 × 450/950, ETH 500 × 500/950.
    sells = {t.asset: t.qty * t.price for t in p.trades}
    assert set(sells) == {"BTC", "ETH"} and all(not t.buy for t in p.trades)
    assert sells["BTC"] == pytest.approx(D(550) + D(500) * 450 / 950, abs=D("0.5"))  # on the lot step, rounded up
    assert sells["ETH"] == pytest.approx(D(500) * 500 / 950, abs=D("0.05"))


def test_an_asset_sold_at_a_loss_is_not_bought_and_the_others_take_its_share():
    why = "wash sale avoided: sold at a loss on 2026-01-10, not bought back within 30 days (from 2026-02-10)"
    p = plan(no_buys={"ETH": why})
    # Without ETH's 550 to its band edge, cash is 39 %: 1,450 USDT to spend. BTC and SOL first to their
    # targets (450 each), then the 550 left by their rooms to the band's inner edge (450 each): 275 each.
    assert [(t.asset, t.qty) for t in p.trades] == [("BTC", D("0.0255")), ("SOL", D("8.75"))]  # 1,275 and 875
    assert {s.asset: s.reason for s in p.skipped}["ETH"] == why


# End to end: the loss, the refusal, and the order lots are sold in.

TARGETS = """
[targets.main]
weights = { BTC = 30, ETH = 30, USDT = 40 }
drift_pct = 5
avoid_wash_sales = true
tax_method = "{method}"
"""


@pytest.fixture
def configure(tmp_path, monkeypatch):
    def write(method: str = "fifo") -> None:
        config = tmp_path / "targets.toml"
        config.write_text(TARGETS.replace("{method}", method))
        monkeypatch.setenv("PORTFOLIO_CONFIG", str(config))

    return write


def test_the_plan_refuses_to_buy_back_an_asset_sold_at_a_loss_within_30_days(cli, binance, configure):
    from test_snapshots import day

    configure()
    cli("init", "--at", (day(-40)).isoformat())
    cli("open", "ETH/USDT", "--qty", "1", "--price", "2100", "--at", (day(-20) + timedelta(hours=1)).isoformat())
    cli("close", "1", "--price", "2000", "--at", (day(-10) + timedelta(hours=1)).isoformat())  # −100, a loss
    cli("open", "BTC/USDT", "--qty", "0.05")  # 2,000 at 40,000: BTC 20 %, ETH 0 %
    p = cli.json("rebalance")
    assert [t["symbol"] for t in p["trades"]] == ["BTC/USDT"]
    sold = (day(-10)).date()
    reasons = {s["asset"]: s["reason"] for s in p["skipped"]}
    assert reasons["ETH"] == (
        f"wash sale avoided: sold at a loss on {sold}, not bought back within 30 days (from {sold + timedelta(31)})"
    )
    assert "wash sale avoided" in cli("rebalance").stdout


def test_a_gain_or_an_older_loss_does_not_block_the_buy(cli, binance, configure):
    from test_snapshots import day

    configure()
    cli("init", "--at", (day(-60)).isoformat())
    cli("open", "ETH/USDT", "--qty", "1", "--price", "2100", "--at", (day(-50)).isoformat())
    cli("close", "1", "--price", "2000", "--at", (day(-31)).isoformat())  # a loss, 31 days ago
    cli("open", "ETH/USDT", "--qty", "0.1", "--price", "1900", "--at", (day(-5)).isoformat())
    cli("close", "2", "--price", "2000", "--at", (day(-4)).isoformat())  # a gain
    p = cli.json("rebalance")
    assert "ETH/USDT" in [t["symbol"] for t in p["trades"]]
    assert all("wash sale" not in s["reason"] for s in p["skipped"])


@pytest.mark.parametrize(("method", "closed"), [("fifo", 1), ("lifo", 3), ("hifo", 2)])
def test_a_rebalancing_sale_closes_lots_in_the_tax_methods_order(cli, binance, configure, method, closed):
    from test_snapshots import day

    configure(method)
    cli("init", "--at", (day(-4)).isoformat())
    for k, price in ((-3, "38000"), (-2, "39500"), (-1, "38500")):  # trades 1 (oldest), 2 (dearest), 3 (newest)
        cli("open", "BTC/USDT", "--qty", "0.04", "--price", price, "--at", (day(k)).isoformat())
    # BTC 0.12 at 40,000 is about 48 % against 30 ± 5: the plan sells about 0.034 BTC, inside one lot.
    p = cli.json("rebalance", "--execute", "--yes")
    [sale] = [t for t in p["trades"] if t["side"] == "sell"]
    assert D(sale["qty"]) < D("0.04")
    open_qty = {t["id"]: D(t["open_qty"]) for t in cli.json("trades")}
    assert [i for i in (1, 2, 3) if open_qty[i] < D("0.04")] == [closed]
    assert open_qty[closed] == D("0.04") - D(sale["qty"])
