"""``open --dry-run`` and ``close --dry-run``: what would be booked, priced and checked as the real
command does, and the ledger byte for byte unchanged."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from test_solvency import ledger_files_digest


def test_a_dry_run_books_nothing_and_matches_the_trade_then_placed(cli, binance, ledger_path):
    cli("init", "--balance", "10000")
    cli("open", "ETH/USDT", "--qty", "1")  # something held before
    # A book to walk: 0.05 at 40,010 and the rest at 40,020 → VWAP (0.05·40010 + 0.05·40020) / 0.1 = 40,015
    binance.books[("BTC/USDT", "futures")] = (
        [(D(39990), D(5))],
        [(D(40010), D("0.05")), (D(40020), D(5))],
    )
    args = ["open", "BTC/USDT", "--qty", "0.1", "--leverage", "5", "--stop-loss", "38000"]
    cli("portfolios")
    digest = ledger_files_digest(ledger_path)
    preview = cli.json(*args, "--dry-run")
    assert ledger_files_digest(ledger_path) == digest
    assert len(cli.json("trades")) == 1
    assert D(preview["price"]) == D(40015) and "2 level(s)" in preview["fill_note"]
    # fee 0.1 × 40,015 × 0.0005 = 2.00075 → 2.00075; margin 4,001.50 / ... = 0.1 × 40,015 / 5 = 800.30
    assert D(preview["fee"]) == D("2.00075") and D(preview["margin"]) == D("800.3")
    assert {r["rule"]: r["passed"] for r in preview["rules"]}["free margin"] is True
    assert len(preview["rules"]) == 10 and preview["would_book"] is True

    fill = cli.json(*args)
    for key in ("price", "fee", "margin", "notional", "qty", "liquidation_price"):
        assert D(preview[key]) == D(fill[key]), key
    value = cli.json("value")["valuation"]
    assert D(preview["equity_after"]) == D(value["equity"])
    assert D(preview["free_margin_after"]) == D(value["free_margin"])
    assert D(preview["margin_level_after_pct"]) == D(value["margin_level_pct"])
    [position] = [p for p in value["positions"] if p["trade_id"] == fill["trade_id"]]
    assert D(preview["allocation_after_pct"]) == D(position["allocation_pct"])


def test_a_dry_run_shows_every_rule_and_a_refusal_exits_1(cli, binance, ledger_path, default_risk_rules):
    cli("init", "--balance", "10000")
    digest = ledger_files_digest(ledger_path)
    result = cli("open", "BTC/USDT", "--qty", "0.03", "--dry-run", code=1)  # 1,200 > 10 % of equity
    assert "would be refused (maximum position size)" in result.stdout
    assert "FAIL" in result.stdout and "1,200.00 USDT in BTC, at most 1,000.00 USDT" in result.stdout
    assert "refused by maximum position size; nothing was booked" in result.stderr
    forced = cli.json("open", "BTC/USDT", "--qty", "0.03", "--dry-run", "--force")
    assert forced["would_book"] is True and forced["overridden_rules"] == ["maximum position size"]
    broke = json.loads(cli("open", "BTC/USDT", "--qty", "1", "--dry-run", "--force", "--json", code=1).stdout)
    assert broke["refused_by"] == ["free margin"]
    assert ledger_files_digest(ledger_path) == digest


@pytest.mark.parametrize("columns", ["80", "160"])
def test_the_dry_run_view_fits_the_terminal(cli, binance, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    cli("init", "--balance", "10000")
    out = cli("open", "BTC/USDT", "--qty", "0.01", "--leverage", "3", "--dry-run").stdout
    assert "Dry run: long margin 3x isolated BTC/USDT would be booked; nothing booked" in out
    assert "Liquidation price" in out and "Margin level" in out and "minimum margin level" in out
    assert max(len(line) for line in out.splitlines()) <= int(columns)
    ordered = cli("order", "BTC/USDT", "--stop-entry", "41000", "--qty", "0.01", "--leverage", "3", "--dry-run").stdout
    assert "At its fill, were the market at 41,000.0" in " ".join(ordered.split()) and "taker fee" in ordered
    assert "Liquidation price" in ordered and "…" not in ordered
    assert max(len(line) for line in ordered.splitlines()) <= int(columns)


def test_a_close_dry_run_books_nothing_and_matches_the_close(cli, binance, ledger_path):
    cli("init", "--balance", "10000")
    cli("open", "BTC/USDT", "--qty", "0.1")
    binance.prices["BTC/USDT"] = D(41000)
    cli("portfolios")
    digest = ledger_files_digest(ledger_path)
    preview = cli.json("close", "1", "--pct", "50", "--dry-run")
    assert ledger_files_digest(ledger_path) == digest
    # 0.05 × (41,000 − 40,000) = 50 gross; exit fee 0.05 × 41,000 × 0.001 = 2.05, entry share 2
    assert D(preview["realized_pnl"]) == D(50) and D(preview["net_pnl"]) == D("45.95")
    done = cli.json("close", "1", "--pct", "50")
    for key in ("realized_pnl", "fees", "net_pnl"):
        assert D(preview[key]) == D(done[key])
    value = cli.json("value")["valuation"]
    assert D(preview["equity_after"]) == D(value["equity"])
    assert D(preview["free_margin_after"]) == D(value["free_margin"])
