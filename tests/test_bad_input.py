"""Bad input: one line on stderr, the documented exit code, and the ledger byte-for-byte unchanged."""

from __future__ import annotations

import hashlib

import pytest

BAD = [
    # (arguments, exit code)
    (["open", "BTC/USDT", "--qty", "-1"], 2),
    (["open", "BTC/USDT", "--qty", "0"], 2),
    (["open", "BTC/USDT", "--qty", "NaN"], 2),
    (["open", "BTC/USDT", "--qty", "inf"], 2),
    (["open", "BTC/USDT", "--qty", "1e30"], 2),
    (["open", "BTC/USDT", "--qty", "abc"], 2),
    (["open", "BTC/USDT", "--qty", "0.000000001"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--price", "-5"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--price", "0"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--notional", "100"], 2),
    (["open", "BTC/USDT"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--leverage", "0"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--leverage", "126"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--leverage", "x"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--cross"], 2),
    (["open", "ETH/BTC", "--qty", "0.1", "--short"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--stop-loss", "50000"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--at", "yesterday"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--at", "2999-01-01"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--at", "1999-01-01"], 2),
    (["open", "BTCXYZ", "--qty", "0.1"], 2),  # no quote currency to split it at (BTCUSDT is BTC/USDT)
    (["open", "'; DROP TABLE trades; --", "--qty", "1"], 2),
    (["open", "NOPE/USDT", "--qty", "1"], 4),
    (["open", "BTC/USDT", "--qty", "100"], 1),
    (["open", "BTC/USDT", "--qty", "0.1", "-p", "ghost"], 4),
    (["close", "99"], 4),
    (["close", "1", "--qty", "5"], 2),
    (["close", "1", "--pct", "150"], 2),
    (["close", "1", "--pct", "50", "--qty", "0.01"], 2),
    (["close", "SOL/USDT"], 4),
    (["close", "1", "--at", "2026-13-45"], 2),
    (["deposit", "-100"], 2),
    (["deposit", "1.123456789"], 2),
    (["withdraw", "999999"], 1),
    (["init", "main"], 1),
    (["init", "other", "--balance", "50"], 2),
    (["init", "other", "--balance", "2000000"], 2),
    (["init", "bad name!"], 2),
    (["trades", "--status", "weird"], 2),
    (["value", "--price", "BTC/USDT=-1"], 2),
    (["value", "--price", "50000"], 2),
    (["frobnicate"], 2),
]


def fingerprint(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("args", "code"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_refused_cleanly(cli, binance, ledger_path, args, code):
    cli("init", "--at", "2026-01-01")
    cli("open", "BTC/USDT", "--qty", "0.1")
    before = fingerprint(ledger_path)
    result = cli(*args, code=code)
    assert "Traceback" not in result.stderr
    if code != 2 or args[0] != "frobnicate":
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert fingerprint(ledger_path) == before


def test_corrupt_config_is_exit_3_naming_the_field(cli, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[fees]\nspot_taker = 2\n")
    result = cli("value", "--config", str(config), code=3)
    assert "fees.spot_taker" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    config.write_text("[fees\nspot_taker = ")
    assert "not valid TOML" in cli("value", "--config", str(config), code=3).stderr
    config.write_text("[fess]\nspot_taker = 0.1\n")
    assert "fess" in cli("value", "--config", str(config), code=3).stderr
    assert "not found" in cli("value", "--config", str(tmp_path / "missing.toml"), code=3).stderr


def test_corrupt_ledger_is_exit_6(cli, tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    result = cli("value", "--db", str(broken), code=6)
    assert "ledger" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unknown_portfolio_names_the_fix(cli):
    cli("init", "other")
    result = cli("value", "--offline", code=4)
    assert "portfolio init main" in result.stderr


def test_no_ledger_yet_names_the_fix(cli, ledger_path):
    result = cli("value", "--offline", code=4)
    assert result.stderr == f"error: no ledger at {ledger_path}; `portfolio init` creates one\n"
