"""Hostile input that was once a traceback or was accepted where it should not have been: one
``error:`` line, the documented exit code, and the ledger exactly as it was."""

from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
from pathlib import Path

import pytest

from portfolio_cli.ledger import store


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(cli, ledger_path: Path, *args: str, code: int) -> str:
    before = fingerprint(ledger_path)
    result = cli(*args, code=code)
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fingerprint(ledger_path) == before
    return result.stderr


@pytest.fixture
def seeded(cli, binance, ledger_path):
    cli("init", "--at", "2026-01-01")
    cli("open", "BTC/USDT", "--qty", "0.1", "--at", "2026-01-02", "--price", "40000")
    return cli


ARGUMENTS = [
    (["open", "BTC/USDT", "--qty", "0.1", "--at", "0001-01-01T00:00+01:00"], 2),
    (["open", "BTC/USDT", "--qty", "0.1", "--at", "9999-12-31T23:00-05:00"], 2),
    (["trades", "--from", "0001-01-01T00:30+01:00"], 2),
    (["export", "trades", "--to", "9999-12-31T23:59-01:00"], 2),
    (["export", "tax", "--year", "0"], 2),
    (["export", "tax", "--year", "9999"], 2),
    (["export", "tax", "--year", "2008"], 2),
    (["init", "main\n"], 2),  # a second "main"
    (["init", "late", "--at", "0001-01-01"], 2),  # would have snapshotted 739,951 days
    (["init", "late", "--at", "2009-01-02"], 2),
    (["open", "BTC/USDT", "--qty", "١٢٣"], 2),  # Arabic-Indic digits
    (["open", "BTC/USDT", "--qty", "５"], 2),  # a fullwidth digit
    (["open", "BTC/USDT", "--qty", "1_000"], 2),
    (["open", "BTC/USDT", "--qty", "0." + "1" * 60], 2),
    (["open", "ſol/uſdt", "--qty", "1"], 2),  # "ſ".upper() is "S"
    (["close", "١"], 2),  # not a trade id, and not a symbol
    (["deposit", "1e400"], 2),
]


@pytest.mark.parametrize(("args", "code"), ARGUMENTS, ids=[repr(a) for a, _ in ARGUMENTS])
def test_hostile_arguments_are_one_line_and_change_nothing(seeded, ledger_path, args, code):
    refused(seeded, ledger_path, *args, code=code)


def exported(cli, tmp_path: Path) -> tuple[list[str], list[dict]]:
    """The trades export of the seeded ledger, as a header and rows to tamper with."""
    path = tmp_path / "trades.csv"
    cli("export", "trades", "-o", str(path))
    reader = csv.DictReader(io.StringIO(path.read_text()))
    return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, header: list[str], rows: list[dict], bom: bool = False) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(("\ufeff" if bom else "") + out.getvalue(), encoding="utf-8")
    return path


def tampered(cli, tmp_path: Path, **changes: str) -> Path:
    header, rows = exported(cli, tmp_path)
    next(row for row in rows if row["record"] == "open").update(changes)
    return write_csv(tmp_path / "tampered.csv", header, rows)


@pytest.mark.parametrize(
    "changes",
    [
        {"qty": "1" * 30},  # 30 digits: once rounded before its range was checked
        {"at": "0001-01-01T00:00:00+01:00"},
        {"at": "2008-12-31T00:00:00+00:00"},
        {"at": "2999-01-01T00:00:00+00:00"},  # in the future
        {"qty": "１"},
        {"trade_id": "１"},
        {"note": "x" * 140_000},  # beyond the CSV reader's field limit
    ],
    ids=["30 digits", "year 1", "before bitcoin", "future", "fullwidth qty", "fullwidth id", "huge field"],
)
def test_a_hostile_import_record_is_refused_cleanly(seeded, ledger_path, tmp_path, changes):
    path = tampered(seeded, tmp_path, **changes)
    seeded("init", "copy")
    refused(seeded, ledger_path, "import", str(path), "-p", "copy", code=2)


def json_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hostile.json"
    path.write_text(text)
    return path


def test_hostile_json_imports_are_refused_cleanly(seeded, ledger_path, tmp_path):
    deep = json_file(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert "nests deeper" in refused(seeded, ledger_path, "import", str(deep), code=2)
    huge = json_file(tmp_path, '{"kind": "trades", "records": [{"trade_id": ' + "7" * 5000 + "}]}")
    refused(seeded, ledger_path, "import", str(huge), code=2)


def test_a_device_is_never_read_as_an_import(seeded, ledger_path):
    assert "not a regular file" in refused(seeded, ledger_path, "import", "/dev/zero", code=2)


def test_an_import_with_a_byte_order_mark_is_accepted(seeded, tmp_path):
    header, rows = exported(seeded, tmp_path)
    path = write_csv(tmp_path / "excel.csv", header, rows, bom=True)
    seeded("init", "copy")
    assert seeded.json("import", str(path), "-p", "copy")["trades_added"] == 1


def test_unknown_symbols_are_refused_unless_allowed(seeded, ledger_path, tmp_path):
    path = tampered(seeded, tmp_path, symbol="NOPE/USDT")
    seeded("init", "copy")
    assert "NOPE/USDT is not a symbol Binance lists" in refused(
        seeded, ledger_path, "import", str(path), "-p", "copy", code=2
    )
    assert seeded.json("import", str(path), "-p", "copy", "--allow-unknown")["trades_added"] == 1


def test_a_large_import_checks_its_ids_in_chunks_on_any_sqlite_build(seeded, tmp_path, monkeypatch):
    """An import of more trades than the SQLite build allows variables in one statement (a build with
    the default limit of 32,766 failed at a quarter of a million; here the limit is made 100)."""
    header, rows = exported(seeded, tmp_path)
    opened = next(row for row in rows if row["record"] == "open")
    many = [dict(opened, trade_id=str(n)) for n in range(1000, 1250)]
    path = write_csv(tmp_path / "many.csv", header, many)
    opened = store.open_ledger

    def small_limit(path_: Path):
        ledger = opened(path_)
        ledger.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)
        return ledger

    monkeypatch.setattr("portfolio_cli.session.open_ledger", small_limit)
    seeded("init", "copy", "--balance", "1000000")
    result = seeded.json("import", str(path), "-p", "copy")
    assert result["trades_added"] == 250
    ids = [t["id"] for t in seeded.json("trades", "-p", "copy")]
    assert ids == list(range(1000, 1250))  # the file's ids, all free, kept


def test_a_config_with_contradictory_limits_is_refused_naming_both(cli, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[risk]\nmin_leverage = 10\nmax_leverage = 5\n")
    result = cli("paths", "--config", str(config), code=3)
    assert "risk.min_leverage = 10" in result.stderr and "risk.max_leverage = 5" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_config_nested_3000_deep_is_exit_3(cli, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    result = cli("paths", "--config", str(config), code=3)
    assert result.stderr.startswith("error: ") and "nests deeper" in result.stderr
    config.write_text("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n")
    assert "nests deeper" in cli("paths", "--config", str(config), code=3).stderr


def test_a_config_with_a_byte_order_mark_is_read(cli, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'\ufeffledger = "{tmp_path / "bom.db"}"\n', encoding="utf-8")
    assert cli.json("paths", "--config", str(config))["ledger"] == str(tmp_path / "bom.db")
