"""`portfolio allocation` and `portfolio rebalance` end to end: the real ledger, the fake Binance's
prices and lot steps, execution all or nothing, the log, the interval and cron's --if-due."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D

import pytest

from portfolio_cli.errors import LedgerFailure

TARGETS = """
[targets.main]
weights = { BTC = 30, ETH = 30, DOGE = 10, USDT = 30 }
drift_pct = 5

[allocation.sectors]
DOGE = "memes"
"""


@pytest.fixture
def held(cli, binance, tmp_path, monkeypatch):
    """10,000 USDT: BTC 40 %, ETH 20 %, DOGE 2 % of equity at the fake's prices, the rest cash."""
    config = tmp_path / "targets.toml"
    config.write_text(TARGETS)
    monkeypatch.setenv("PORTFOLIO_CONFIG", str(config))
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")  # 4,000 at 40,000, fee 4
    cli("open", "ETH/USDT", "--qty", "1")  # 2,000, fee 2
    cli("open", "DOGE/USDT", "--qty", "2000")  # 200 at 0.1, fee 0.2
    return cli


def dump(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_allocation_shows_weights_targets_classes_and_concentration(held):
    a = held.json("allocation")
    equity = D("9993.8")  # 10,000 less 6.2 of fees
    assert D(a["equity"]) == equity
    rows = {r["asset"]: r for r in a["assets"]}
    assert D(rows["BTC"]["weight_pct"]) == D(4000) / equity * 100
    assert D(rows["USDT"]["net"]) == D("3793.8") and rows["USDT"]["class"] == "stablecoins"
    assert D(rows["BTC"]["drift_pct"]) == D(4000) / equity * 100 - 30 and rows["BTC"]["outside_band"] is True
    assert rows["DOGE"]["class"] == "altcoins" and rows["DOGE"]["sector"] == "memes"
    assert {c["name"] for c in a["classes"]} == {"BTC", "ETH", "altcoins", "stablecoins"}
    # Herfindahl over the assets' shares of the exposure: (4000² + 2000² + 200²) / 6200².
    hhi = (D(4000) ** 2 + D(2000) ** 2 + D(200) ** 2) / D(6200) ** 2
    assert D(a["concentration"]["herfindahl"]) == pytest.approx(hhi, abs=D("1e-20"))
    assert a["concentration"]["largest_asset"] == "BTC"
    out = held("allocation").stdout
    assert "Allocation of main" in out and "By class" in out and "Herfindahl index" in out


def test_the_plan_is_sells_first_on_lot_steps_and_lands_every_asset_inside_its_band(held):
    p = held.json("rebalance")
    assert p["due"] is True and p["executed"] is None
    sides = [t["side"] for t in p["trades"]]
    assert sides == sorted(sides, reverse=True)  # "sell" before "buy"
    steps = {"BTC/USDT": D("0.00001"), "ETH/USDT": D("0.0001"), "DOGE/USDT": D(1)}
    assert all(D(t["qty"]) % steps[t["symbol"]] == 0 for t in p["trades"])
    assert [w["asset"] for w in p["after"] if w["outside_band"]] == []
    assert D(p["drift_after"]) < D(p["drift_before"]) and 0 <= p["efficiency"] < 1


def test_execute_books_the_plan_exactly_and_logs_it(held, ledger_path):
    planned = held.json("rebalance")
    done = held.json("rebalance", "--execute", "--yes")
    assert done["executed"] == 1 and done["trades"] == planned["trades"]
    # At unchanged prices the ledger's own valuation is the plan's "after", to the unit.
    value = held.json("value")
    assert D(value["valuation"]["equity"]) == D(done["equity_after"])
    assert D(value["valuation"]["free_margin"]) == D(done["cash_after"])
    after = {r["asset"]: r for r in held.json("allocation")["assets"]}
    assert all(not r["outside_band"] for r in after.values())
    log = held.json("rebalance", "--log")
    assert [(e["id"], e["strategy"], e["mode"], e["forced"]) for e in log] == [(1, "threshold", "sell", False)]
    assert [t["side"] for t in log[0]["trades"]] == [t["side"] for t in done["trades"]]
    assert D(log[0]["drift_before"]) == D(done["drift_before"]).quantize(D("1E-8"))  # the ledger keeps 8 places
    held("verify")
    with sqlite3.connect(ledger_path) as conn:
        notes = {n for (n,) in conn.execute("select note from trades where note is not null")}
        notes |= {n for (n,) in conn.execute("select note from closes where note is not null")}
    assert notes == {"rebalance 1"}


def test_the_minimum_interval_refuses_unless_forced_and_if_due_says_no_rebalancing_needed(held, binance):
    held("rebalance", "--execute", "--yes")
    binance.prices["BTC/USDT"] = D(60000)  # BTC far above its band again
    refused = held("rebalance", "--execute", "--yes", code=1)
    assert "within min_interval_hours = 24" in refused.stderr and "--force overrides" in refused.stderr
    quiet = held("rebalance", "--execute", "--yes", "--if-due")
    assert quiet.stdout.startswith("no rebalancing needed: the last rebalance was 0.0 h ago")
    forced = held.json("rebalance", "--execute", "--yes", "--force")
    assert forced["executed"] == 2
    assert [e["forced"] for e in held.json("rebalance", "--log")] == [False, True]


def test_if_due_acts_only_when_the_threshold_is_crossed(held):
    held("rebalance", "--execute", "--yes", "--if-due")  # due: BTC is at 40 %
    assert len(held.json("rebalance", "--log")) == 1


def test_a_failure_in_the_middle_of_execute_leaves_the_ledger_unchanged(held, ledger_path, monkeypatch):
    from portfolio_cli.ledger.store import Ledger

    before = dump(ledger_path)
    booked = []
    real_add_trade = Ledger.add_trade

    def failing(self, *args, **kwargs):  # the sells are booked by now: fail on the first buy
        booked.append(args)
        raise LedgerFailure("disk I/O error (injected)")

    monkeypatch.setattr(Ledger, "add_trade", failing)
    result = held("rebalance", "--execute", "--yes", code=6)
    assert result.stderr == "error: disk I/O error (injected)\n" and booked
    monkeypatch.setattr(Ledger, "add_trade", real_add_trade)
    assert dump(ledger_path) == before
    assert held.json("rebalance", "--log") == []


def test_execute_needs_yes_without_a_terminal_and_refuses_without_targets(held, monkeypatch):
    result = held("rebalance", "--execute", code=2)
    assert result.stderr == "error: --execute without a terminal to confirm on needs --yes\n"
    assert held("rebalance", "--if-due", code=2).stderr.startswith("error: --yes and --if-due go with --execute")
    held("init", "other")
    missing = held("rebalance", "-p", "other", code=3)
    assert missing.stderr.startswith("error: other has no targets: add [targets.other]")


def test_rebalances_export_one_row_per_trade(held):
    done = held.json("rebalance", "--execute", "--yes")
    rows = held("export", "rebalances").stdout.splitlines()
    assert rows[0].startswith("rebalance_id,at,portfolio,strategy,mode,forced,drift_before_pct,drift_after_pct,")
    assert len(rows) == 1 + len(done["trades"])
    assert all(row.startswith("1,") for row in rows[1:])


def test_cron_lines_rebalance_portfolios_with_targets_when_due(held):
    lines = held("cron").stdout.splitlines()
    rebalance = [line for line in lines if " rebalance " in line]
    assert len(rebalance) == 1 and rebalance[0].startswith("15 0 * * * ")
    assert "rebalance -p main --execute --yes --if-due" in rebalance[0]


def test_correlated_assets_are_grouped_with_their_combined_weight(cli, binance):
    from test_risk_rules import correlated_history

    correlated_history(binance)  # BTC and ETH move together over 95 days; SOL on its own
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.05")  # 2,000 at 40,000
    cli("open", "ETH/USDT", "--qty", "1")  # 2,000
    cli("open", "SOL/USDT", "--qty", "10")  # 1,000
    a = cli.json("allocation")
    equity = D(a["equity"])
    assert [g["assets"] for g in a["correlated_groups"]] == [["BTC", "ETH"]]
    assert D(a["correlated_groups"][0]["weight_pct"]) == D(4000) / equity * 100


def test_a_change_between_the_plan_and_its_booking_refuses_it(held, ledger_path):
    from portfolio_cli.errors import RuleRefused
    from portfolio_cli.services.rebalance import run
    from portfolio_cli.session import Session

    def confirm(planned):
        held("withdraw", "3000")  # another command, while the trader reads the plan
        return True

    session = Session.create("test")
    before = None
    try:
        with pytest.raises(RuleRefused, match="the portfolio changed while the plan was made or confirmed"):
            before = dump(ledger_path)
            run(session, "main", execute_plan=True, confirm=confirm)
    finally:
        session.close()
    after = dump(ledger_path)
    assert after != before  # the withdrawal stands …
    assert held.json("rebalance", "--log") == []  # … and nothing of the stale plan was booked
    assert not [line for line in after if "rebalance 1" in line]
