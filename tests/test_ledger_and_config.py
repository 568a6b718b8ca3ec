from __future__ import annotations

import os
import stat
from decimal import Decimal as D

import pytest

from conftest import ledger_rows
from portfolio_cli.config import load_settings
from portfolio_cli.engine.records import FlowKind
from portfolio_cli.errors import ConfigInvalid
from portfolio_cli.ledger import open_ledger


def test_money_is_exact_text_with_8_places(tmp_path):
    from datetime import UTC, datetime

    ledger = open_ledger(tmp_path / "l.db")
    now = datetime.now(UTC)
    with ledger.transaction("test", now):
        p = ledger.create_portfolio("p", now)
        ledger.add_cash_flow(p, FlowKind.DEPOSIT, D("12345678901234567.89"), now)
    assert ledger.cash_flows(p)[0].amount == D("12345678901234567.89")
    raw = tuple(ledger.conn.execute("select amount, typeof(amount) from cash_flows").fetchone())
    assert raw == ("12345678901234567.89000000", "text")


def test_a_failed_command_writes_nothing(tmp_path):
    from datetime import UTC, datetime

    ledger = open_ledger(tmp_path / "l.db")
    now = datetime.now(UTC)
    with pytest.raises(RuntimeError), ledger.transaction("test", now):
        ledger.create_portfolio("p", now)
        raise RuntimeError("crash in the middle")
    assert ledger.portfolios() == []
    assert ledger.audit_entries() == []


def test_ledger_is_readable_by_its_owner_only(cli, ledger_path):
    cli("init")
    assert stat.S_IMODE(os.stat(ledger_path).st_mode) == 0o600


def test_ledger_location_precedence(cli, tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text(f'ledger = "{tmp_path / "from-config.db"}"\n')
    assert cli.json("paths", "--config", str(config))["ledger"] == str(tmp_path / "from-config.db")
    monkeypatch.setenv("PORTFOLIO_DB", str(tmp_path / "from-env.db"))
    assert cli.json("paths", "--config", str(config))["ledger"] == str(tmp_path / "from-env.db")
    assert cli.json("paths", "--db", str(tmp_path / "opt.db"))["ledger"] == str(tmp_path / "opt.db")


def test_default_ledger_is_in_the_user_dir_not_the_cwd(cli, isolated_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.json("paths")["ledger"] == str(isolated_env / "ledger.db")


def test_settings_layering_file_then_env(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        "[fees]\nspot_taker = 0.00075\nmargin_taker = 0.0002\n[portfolios.scalp.fees]\nspot_taker = 0.0001\n"
    )
    settings = load_settings(config, environ={"PORTFOLIO_FEES__MARGIN_TAKER": "0.0004"})
    assert settings.fees.spot_taker == D("0.00075")  # file over default, exact
    assert settings.fees.margin_taker == D("0.0004")  # env over file
    assert settings.for_portfolio("scalp").fees.spot_taker == D("0.0001")
    assert settings.for_portfolio("other").fees.spot_taker == D("0.00075")


def test_bad_env_value_is_a_config_error():
    with pytest.raises(ConfigInvalid, match="risk.max_open_positions"):
        load_settings(None, environ={"PORTFOLIO_RISK__MAX_OPEN_POSITIONS": "many"})


def test_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).parent.parent / "config" / "portfolio.example.toml"
    settings = load_settings(example, environ={})
    assert settings.fees.spot_taker == D("0.001")


def test_per_portfolio_fee_override_applies_to_trades(cli, binance, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[portfolios.cheap.fees]\nspot_taker = 0\n")
    cli("init", "cheap", "--config", str(config))
    fill = cli.json("open", "BTC/USDT", "--qty", "0.1", "-p", "cheap", "--config", str(config))
    assert D(fill["fee"]) == 0
    assert ledger_rows  # the shared helper stays importable for other modules
