from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ledger_rows
from portfolio_cli.config import load_settings
from portfolio_cli.engine.records import FlowKind
from portfolio_cli.errors import ConfigInvalid
from portfolio_cli.ledger import open_ledger

# The codec's quick paths against the full formulas: 500 decimals and 250 texts by default, four times
# as many in long mode.
CODEC_EXAMPLES = 500 if os.environ.get("PORTFOLIO_LONG_TESTS") == "1" else 125


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


@settings(max_examples=CODEC_EXAMPLES * 4, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**19), max_value=10**19, places=None))
def test_money_text_is_the_ledger_rounding_whatever_the_decimal(value):
    """``codec.money`` takes a quick path for numbers already at 8 places: the same text as rounding
    half up to 8 places and writing fixed point, for every shape (exponents, zeros, signs)."""
    from portfolio_cli.ledger import codec
    from portfolio_cli.money import q8

    assert codec.money(value) == f"{q8(value):f}"
    at_8 = value.quantize(D("0.00000001"))
    assert codec.money(at_8) == f"{q8(at_8):f}"
    assert codec.money(-at_8) == f"{q8(-at_8):f}"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_timestamps_are_utc_with_microseconds_also_when_repeated(moment):
    from portfolio_cli.ledger import codec

    expected = moment.astimezone(UTC).isoformat(timespec="microseconds")
    assert codec.timestamp(moment) == codec.timestamp(moment) == expected  # the second from the memo
    assert codec.timestamp(moment.replace(microsecond=0)).endswith(".000000+00:00")


@settings(max_examples=CODEC_EXAMPLES * 2, deadline=None)
@given(st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{0,10})?", fullmatch=True) | st.sampled_from(["0.00000000", "-0.00000000"]))
def test_text_the_import_writes_as_it_is_is_what_money_writes(text):
    """An import writes an amount whose text ``is_money`` as that text, and its negation (a fee's
    flow) by turning the sign: both exactly what encoding the Decimal gives."""
    from portfolio_cli.ledger import codec

    if codec.is_money(text):
        assert codec.money(D(text)) == text
        assert codec.negated_money(text) == codec.money(-D(text))
    elif "." in text and len(text.split(".")[1]) == 8 and len(text) <= 28:
        assert codec.money(D(text)) != text or text == "-0.00000000"  # a leading zero, or a negative zero


@settings(max_examples=CODEC_EXAMPLES * 2, deadline=None)
@given(st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00", fullmatch=True))
def test_a_moment_in_the_form_timestamp_writes_is_written_back_as_the_same_text(text):
    from portfolio_cli.ledger import codec

    assert codec.is_timestamp(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:  # month 13, say: the import then refuses it
        return
    assert moment.tzinfo is UTC and codec.timestamp(moment) == text
    assert not codec.is_timestamp(text.replace("T", " ")) and not codec.is_timestamp(text[:-6] + "+01:00")


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


def test_paths_names_the_data_directory_that_holds_the_demo_ledger(cli, isolated_env):
    """The README sends the trader to the data directory `portfolio paths` shows, for demo.db."""
    cli("demo")
    shown = cli.json("paths")
    assert shown["data"] == str(isolated_env)
    assert (isolated_env / "demo.db").exists()
    assert f"data    {isolated_env}" in cli("paths").stdout


@pytest.mark.parametrize(
    "args",
    [
        ["value", "--offline"],
        ["trades"],
        ["deposit", "100"],
        ["check", "--offline"],
        ["snapshot", "--offline"],
        ["history"],
        ["portfolios"],
        ["verify"],
        ["backup", "copy.db"],
        ["export", "trades"],
    ],
)
@pytest.mark.parametrize("how", ["--db", "PORTFOLIO_DB"])
def test_a_mistyped_ledger_path_is_not_found_not_a_new_empty_ledger(cli, tmp_path, monkeypatch, args, how):
    cli("init", "--db", str(tmp_path / "ledger.db"))
    typo = tmp_path / "ledgr.db"
    args = [str(tmp_path / a) if a == "copy.db" else a for a in args]
    if how == "--db":
        result = cli(*args, "--db", str(typo), code=4)
    else:
        monkeypatch.setenv("PORTFOLIO_DB", str(typo))
        result = cli(*args, code=4)
    assert result.stderr == f"error: no ledger at {typo}; `portfolio init` creates one\n"
    assert not typo.exists() and not (tmp_path / "copy.db").exists()
    assert result.stdout == ""


def test_an_init_that_fails_after_creating_the_ledger_leaves_no_file_behind(cli, tmp_path, monkeypatch):
    """Say the disk fills on init's first commit: the new file must not stay as an empty ledger that
    every later command would take for a real one."""
    from portfolio_cli import services
    from portfolio_cli.errors import StorageFailure

    def fails_on_commit(session, *args):
        assert session.ledger is not None  # the file is created here
        raise StorageFailure("cannot write the ledger: the disk is full")

    monkeypatch.setattr(services, "init_portfolio", fails_on_commit)
    new = tmp_path / "new.db"
    cli("init", "--db", str(new), code=6)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("new.db")) == []


def test_paths_and_help_work_before_any_ledger_exists(cli, ledger_path):
    assert cli.json("paths")["ledger"] == str(ledger_path)
    cli("value", "--help")
    assert not ledger_path.exists()
    cli("init")  # the one command (with demo) that creates a ledger
    assert ledger_path.exists()


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
