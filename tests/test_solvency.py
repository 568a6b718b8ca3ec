"""Solvency is not a preference: ``--force`` overrides the risk rules (the trader's preferences) and
never spends money the account does not have (docs/accounting.md, "What --force can override")."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from decimal import Decimal as D
from pathlib import Path

import pytest


def ledger_files_digest(path: Path) -> str:
    """The ledger file and its write-ahead log, byte for byte."""
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + "-wal")):
        digest.update(part.read_bytes() if part.exists() else b"-")
    return digest.hexdigest()


def overrides(ledger_path: Path) -> list[dict]:
    with sqlite3.connect(ledger_path) as conn:
        rows = conn.execute("select details from audit_log where action = 'rule override' order by id").fetchall()
    return [json.loads(r[0]) for r in rows]


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "forced"])
def test_a_spot_buy_costing_more_than_the_free_cash_is_refused_even_forced(cli, binance, ledger_path, force):
    # The repro: 1 BTC of spot at 59,000 on a 19,933 wallet; free margin would be −39,126.
    binance.prices["BTC/USDT"] = D(59000)
    cli("init", "--balance", "19933")
    digest = ledger_files_digest(ledger_path)
    result = cli("open", "BTC/USDT", "--qty", "1", *force, code=1)
    # needs 59,000 + fee 59 = 59,059 with 19,933 free
    assert "refused by free margin" in result.stderr and "59,059.00" in result.stderr
    assert "19,933.00" in result.stderr and "--force cannot" in result.stderr
    assert ledger_files_digest(ledger_path) == digest
    assert cli.json("trades") == []


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "forced"])
def test_a_margin_open_needing_more_than_the_free_margin_is_refused_even_forced(cli, binance, force):
    cli("init", "--balance", "1000")
    # 1 BTC at 10x: margin 4,000 + fee 20 with 1,000 free
    result = cli("open", "BTC/USDT", "--qty", "1", "--leverage", "10", *force, code=1)
    assert "refused by free margin" in result.stderr and "4,020.00" in result.stderr
    assert cli.json("trades") == []


def test_force_still_overrides_a_preference_beside_solvency(cli, binance, ledger_path, default_risk_rules):
    cli("init", "--balance", "10000")
    refused = cli("open", "BTC/USDT", "--qty", "0.03", code=1)  # 1,200 > 10 % of equity
    assert "maximum position size" in refused.stderr and "--force overrides" in refused.stderr
    fill = cli.json("open", "BTC/USDT", "--qty", "0.03", "--force")
    assert fill["overridden_rules"] == ["maximum position size"]


def margin_account(cli) -> None:
    """10,000 USDT and 1 BTC long at 10x at 40,000: margin M = 4,000, fee 20, so the wallet and the
    margin equity Em are 9,980, free margin 5,980 and the margin level 9,980 / 4,000 = 249.5 %."""
    cli("init", "--balance", "10000")
    cli("open", "BTC/USDT", "--qty", "1", "--leverage", "10")
    valuation = cli.json("value")["valuation"]
    assert (D(valuation["margin_equity"]), D(valuation["free_margin"])) == (D(9980), D(5980))


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "forced"])
def test_a_withdrawal_below_the_margin_call_line_is_refused_even_forced(cli, binance, ledger_path, force):
    margin_account(cli)
    digest = ledger_files_digest(ledger_path)
    # The repro: (9,980 − 5,598.80) / 4,000 = 109.53 %, below the 110 % auto-close line,
    # though within the free margin of 5,980.
    result = cli("withdraw", "5598.8", *force, code=1)
    assert "refused by margin call line" in result.stderr and "109.53%" in result.stderr
    assert "margin_rules.margin_call_pct" in result.stderr
    assert ledger_files_digest(ledger_path) == digest


def test_the_margin_call_line_off_leaves_the_free_margin_as_the_limit(cli, binance, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_MARGIN_RULES__MARGIN_CALL_PCT", "off")
    margin_account(cli)
    assert "free margin" in cli("withdraw", "5980.01", "--force", code=1).stderr
    cli("withdraw", "5598.8", "--force")  # 109.53 % is below only the risk rule, which --force overrides


def test_a_withdrawal_below_the_minimum_margin_level_needs_force_and_is_recorded(cli, binance, ledger_path):
    margin_account(cli)
    # (9,980 − 3,980) / 4,000 = 150 %, below risk.min_margin_level_pct (200 %), above the 110 % line
    refused = cli("withdraw", "3980", code=1)
    assert "refused by minimum margin level" in refused.stderr and "150.00%" in refused.stderr
    assert "risk.min_margin_level_pct" in refused.stderr and "--force overrides" in refused.stderr
    assert overrides(ledger_path) == []
    forced = cli("withdraw", "3980", "--force")
    assert "minimum margin level" in forced.stderr and "overridden by --force" in forced.stderr
    [details] = overrides(ledger_path)
    assert "150.00%" in details["rules"][0] and details["cash_flow_id"] > 0
    assert D(cli.json("value")["valuation"]["withdrawals"]) == D(3980)
    cli("withdraw", "1", code=1)  # still refused without --force: 149.98 %


def test_a_withdrawal_above_the_free_margin_is_refused_even_forced(cli, binance):
    cli("init", "--balance", "1000")
    cli("open", "BTC/USDT", "--qty", "0.02")  # 800 of spot, fee 0.8: 199.2 free
    result = cli("withdraw", "199.21", "--force", code=1)
    assert "refused by free margin" in result.stderr and "-0.01" in result.stderr
    cli("withdraw", "199.2")  # no margin used: the margin level does not apply
