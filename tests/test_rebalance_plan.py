"""The rebalance planner against hand-computed plans, and hypothesis properties of every plan."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portfolio_cli.config import Risk, load_settings, target_conflicts
from portfolio_cli.config import Targets as TargetSettings
from portfolio_cli.engine.market import MarketRules
from portfolio_cli.engine.rebalance import CASH, Account, Holding, RebalanceTargets, plan_rebalance, weights_of
from portfolio_cli.engine.rules import Exposure, RiskLimits, TradeCheck, check_open
from portfolio_cli.errors import ConfigInvalid

OPEN_LIMITS = RiskLimits(D(10), D("0.1"), D(100), D(100), 50, 50, 1, 125, D(200), D(10), D(100))


def holding(asset: str, price: str, qty: str, step: str, min_notional: str) -> Holding:
    cost = D(price) * D(qty)
    lots = ((D(qty), Exposure(f"{asset}/USDT", asset, cost, cost)),) if D(qty) else ()
    rules = MarketRules(f"{asset}/USDT", D(step), D(step), D(min_notional))
    return Holding(asset, D(price), cost, D(qty), rules, lots)


# Equity 10,000: BTC 50 %, ETH 23.5 %, SOL 4 %, cash 22.5 %; targets 40 / 30 / 10 / 20, band ±5.
HOLDINGS = {
    "BTC": holding("BTC", "50000", "0.1", "0.001", "10"),
    "ETH": holding("ETH", "2350", "1", "0.001", "10"),
    "SOL": holding("SOL", "100", "4", "0.01", "200"),  # a minimum notional above the 150 USDT SOL needs
}
ACCOUNT = Account(D(10000), D(2250), D(2250), D(0), tuple(e for h in HOLDINGS.values() for _, e in h.lots))
WEIGHTS = {"BTC": D(40), "ETH": D(30), "SOL": D(10), CASH: D(20)}


def test_three_assets_and_cash_by_hand():
    plan = plan_rebalance(ACCOUNT, HOLDINGS, RebalanceTargets(WEIGHTS, D(5)), D("0.001"), D(0), OPEN_LIMITS)
    trades = [(t.asset, t.buy, t.qty, t.price, t.fee) for t in plan.trades]
    # BTC 50 % → 44.5 % (0.9 of the band inside): sell 550 USDT = 0.011 BTC, fee 0.55.
    # ETH 23.5 % → 25.5 %: buy 200 USDT; SOL's 150 USDT is below its 200 minimum, so it is dropped and the
    # cash it would have taken (cash now 26 %, above its band) buys 150 USDT more ETH: 350 USDT is
    # 0.148936… ETH, 0.148 on the 0.001 step, fee 0.3478.
    assert trades == [("BTC", False, D("0.011"), D(50000), D("0.55")), ("ETH", True, D("0.148"), D(2350), D("0.3478"))]
    assert [(s.asset, "minimum of 200" in s.reason) for s in plan.skipped] == [("SOL", True)]
    assert plan.cash_after == D(2250) + D(550) - D("0.55") - D("347.8") - D("0.3478")  # 2,451.3022
    assert plan.equity_after == D(10000) - D("0.55") - D("0.3478")
    after = {w.asset: w for w in plan.after}
    assert after["BTC"].weight_pct == D(4450) / plan.equity_after * 100  # 44.504 %
    assert after["ETH"].weight_pct == (D(2350) + D("0.148") * D(2350)) / plan.equity_after * 100  # 26.980 %
    assert [w.asset for w in plan.after if w.outside] == ["SOL"]
    assert plan.drift_before == D(10) + D("6.5") + D(6) + D("2.5")
    assert plan.efficiency == pytest.approx(float(plan.drift_after / 25))
    assert plan.turnover == D(550) + D("347.8")


def test_buy_only_mode_sells_nothing_and_says_so():
    plan = plan_rebalance(
        ACCOUNT, HOLDINGS, RebalanceTargets(WEIGHTS, D(5), buy_only=True), D("0.001"), D(0), OPEN_LIMITS
    )
    # Only ETH is bought, to 25.5 %: 200 USDT is 0.0851 ETH, 0.085 on the step; BTC stays above its band.
    assert [(t.asset, t.buy, t.qty) for t in plan.trades] == [("ETH", True, D("0.085"))]
    reasons = {s.asset: s.reason for s in plan.skipped}
    assert reasons["BTC"] == "above its band, and buy-only mode sells nothing"
    assert "minimum of 200" in reasons["SOL"]
    assert plan.cash_after == D(2250) - D("199.75") - D("0.19975")


def test_slippage_moves_fills_against_the_trader_and_is_reported():
    plan = plan_rebalance(ACCOUNT, HOLDINGS, RebalanceTargets(WEIGHTS, D(5)), D("0.001"), D(10), OPEN_LIMITS)
    sell, buy = plan.trades
    assert sell.price == D(50000) * D("0.999") and buy.price == D(2350) * D("1.001")
    assert plan.slippage == sell.qty * D(50) + buy.qty * D("2.35")


def test_a_risk_rule_drops_a_buy_with_its_own_words():
    tight = RiskLimits(D(10), D("0.1"), D(25), D(100), 50, 50, 1, 125, D(200), D(10), D(100))  # 25 % per asset
    plan = plan_rebalance(ACCOUNT, HOLDINGS, RebalanceTargets(WEIGHTS, D(5)), D("0.001"), D(0), tight)
    reasons = {s.asset: s.reason for s in plan.skipped}
    assert "maximum position size" in reasons["ETH"] and "risk.max_position_pct" in reasons["ETH"]
    assert all(t.asset != "ETH" for t in plan.trades)


def test_targets_that_conflict_with_the_risk_rules_name_both(tmp_path):
    targets = TargetSettings(weights={"BTC": D(60), "ETH": D(35), "USDT": D(5)})
    conflicts = target_conflicts("main", targets, Risk())
    assert conflicts[0] == "targets.main.weights.BTC = 60 % is above risk.max_position_pct = 10 %"
    assert any("risk.max_total_risk_pct" in c for c in conflicts)
    assert any("targets.main.weights.USDT = 5 % is below risk.cash_reserve_pct = 10 %" in c for c in conflicts)
    config = tmp_path / "c.toml"
    config.write_text("[targets.main]\nweights = { BTC = 60, ETH = 35, USDT = 5 }\n")
    with pytest.raises(ConfigInvalid, match="targets.main.weights.BTC = 60 % is above risk.max_position_pct"):
        load_settings(config, environ={})
    config.write_text("[targets.main]\nweights = { BTC = 60, USDT = 30 }\n")
    with pytest.raises(ConfigInvalid, match="must add up to 100"):
        load_settings(config, environ={})


# Properties over generated portfolios.

steps = st.sampled_from(["0.00001", "0.001", "0.1", "1"])


@st.composite
def portfolios(draw):
    assets = draw(st.lists(st.sampled_from(["BTC", "ETH", "SOL", "DOGE", "ADA"]), min_size=1, max_size=5, unique=True))
    holdings = {}
    for asset in assets:
        price = draw(st.decimals("0.05", "60000", places=2))
        qty = draw(st.decimals("0", "50", places=3))
        holdings[asset] = holding(asset, str(price), str(qty), draw(steps), str(draw(st.integers(1, 50))))
    cash = D(draw(st.integers(0, 50_000)))
    invested = sum((h.exposure for h in holdings.values()), D(0))
    if invested + cash <= 0:
        cash = D(1000)
    positions = tuple(e for h in holdings.values() for _, e in h.lots)
    account = Account(invested + cash, cash, cash, D(0), positions)
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(assets), max_size=len(assets))))
    bounds = [0, *cuts, 100]
    weights = {a: D(bounds[i + 1] - bounds[i]) for i, a in enumerate(assets)}
    weights[CASH] = D(100 - bounds[-2])
    targets = RebalanceTargets(weights, D(draw(st.integers(1, 10))), buy_only=draw(st.booleans()))
    limits = RiskLimits(
        D(draw(st.integers(0, 20))), D("0.1"), D(draw(st.integers(20, 100))), D(100), 50, 50, 1, 125, D(200),
        D(draw(st.integers(0, 15))), D(100),
    )  # fmt: skip
    return (
        account,
        holdings,
        targets,
        limits,
        D(draw(st.sampled_from(["0", "0.001", "0.0075"]))),
        D(draw(st.integers(0, 30))),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios())
def test_every_plan_is_affordable_within_the_rules_and_explains_what_stays_outside(case):
    account, holdings, targets, limits, fee_rate, slippage = case
    plan = plan_rebalance(account, holdings, targets, fee_rate, slippage, limits)

    # 1. It never spends more than the cash there was plus its own sales.
    spent = sum((t.notional + t.fee for t in plan.trades if t.buy), D(0))
    raised = sum((t.notional - t.fee for t in plan.trades if not t.buy), D(0))
    assert spent <= account.cash + raised
    assert [t.buy for t in plan.trades] == sorted(t.buy for t in plan.trades)  # sells first
    if targets.buy_only:
        assert all(t.buy for t in plan.trades)

    # 2. No buy breaks a risk rule, replayed in order on the state the trades before it leave; no sale
    # takes more than is held, and every quantity sits on its lot step.
    free, equity, margin_equity = account.cash, account.equity, account.margin_equity
    positions = list(account.positions)
    for t in plan.trades:
        assert t.qty % holdings[t.asset].rules.amount_step == 0
        if t.buy:
            new = Exposure(t.symbol, t.asset, t.notional, t.notional)
            check = TradeCheck(new, True, t.notional, t.fee, 1, equity, free, margin_equity, D(0), tuple(positions))
            assert check_open(check, limits) == []
            positions.append(new)
            free -= t.notional + t.fee
            margin_equity -= t.notional + t.fee
        else:
            assert t.qty <= holdings[t.asset].spot_qty
            positions = [p for p in positions if p.asset != t.asset]  # fewer positions: never more refusals
            free += t.notional - t.fee
            margin_equity += t.notional - t.fee
        equity -= t.fee + t.slippage

    # 3. Recomputed from the trades alone, every asset (and cash) is inside its band or listed with a reason.
    exposure = {a: h.exposure for a, h in holdings.items()}
    cash, equity_after = account.cash, account.equity
    for t in plan.trades:
        sign = 1 if t.buy else -1
        exposure[t.asset] += sign * t.qty * t.mark
        cash -= sign * t.qty * t.price + t.fee
        equity_after -= t.fee + t.qty * abs(t.price - t.mark)
    listed = {s.asset: s.reason for s in plan.skipped}
    for w in weights_of(equity_after, cash, exposure, targets):
        if w.outside:
            assert listed.get(w.asset), (w, listed)


def test_an_asset_whose_trade_was_dropped_keeps_its_reason_even_when_it_ends_inside_its_band():
    # Equity 10,000: BTC 51 % (0.102 at 50,000), ETH 24.9999 % (1 at 2,499.99), cash 24.0001 %;
    # targets 45 / 30 / 25, band ±5. BTC sells 150 USDT to 49.5 % (fee 0.15). ETH, 0.0001 below its band,
    # wants about 50 USDT, under its 100 minimum, so it is dropped; the BTC fee then lowers equity to
    # 9,999.85, which lifts ETH to 2,499.99 / 9,999.85 = 25.00027 %, inside its band. It still was not
    # traded, and the plan says why.
    holdings = {
        "BTC": holding("BTC", "50000", "0.102", "0.001", "10"),
        "ETH": holding("ETH", "2499.99", "1", "0.001", "100"),
    }
    account = Account(
        D(10000), D("2400.01"), D("2400.01"), D(0), tuple(e for h in holdings.values() for _, e in h.lots)
    )
    targets = RebalanceTargets({"BTC": D(45), "ETH": D(30), CASH: D(25)}, D(5))
    plan = plan_rebalance(account, holdings, targets, D("0.001"), D(0), OPEN_LIMITS)
    assert [(t.asset, t.buy, t.qty) for t in plan.trades] == [("BTC", False, D("0.003"))]
    after = {w.asset: w for w in plan.after}
    assert not after["ETH"].outside and after["ETH"].weight_pct == D("2499.99") / D("9999.85") * 100
    [skipped] = plan.skipped
    assert skipped.asset == "ETH" and "minimum of 100" in skipped.reason
