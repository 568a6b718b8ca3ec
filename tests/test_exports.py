"""Exports, the tax report under FIFO/LIFO/HIFO, import round trips, spreadsheet safety, backups."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import stat
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

import warm
from conftest import ledger_rows
from portfolio_cli.export import content_hash


def tax_ledger(cli) -> None:
    """Three BTC buys and two sells (closed oldest trade first, as `close SYMBOL` does), one margin trade.

    Buys (cost = qty × price + 0.1 % fee): A 2025-01-10 0.1 @ 40000 → 4004; B 2025-06-01 0.1 @ 50000 →
    5005; C 2026-02-01 0.1 @ 45000 → 4504.5. Sells (proceeds = qty × price − fee): 2026-03-01 0.15 @
    60000 as closes of A (0.1 → 5994) and B (0.05 → 2997); 2026-09-01 0.1 @ 55000 as closes of B and C
    (0.05 each → 2747.25).
    """
    cli("init", "--balance", "20000", "--at", "2025-01-01")
    for at, price in (("2025-01-10", "40000"), ("2025-06-01", "50000"), ("2026-02-01", "45000")):
        cli("open", "BTC/USDT", "--qty", "0.1", "--price", price, "--at", f"{at}T12:00")
    cli("close", "BTC/USDT", "--qty", "0.15", "--price", "60000", "--at", "2026-03-01T12:00")
    cli("close", "BTC/USDT", "--qty", "0.1", "--price", "55000", "--at", "2026-09-01T12:00")
    # Margin: 1 ETH short @ 2000 (fee 1), closed @ 1900 (fee 0.95): +100 gross, 98.05 net.
    cli("open", "ETH/USDT", "--qty", "1", "--short", "--leverage", "2", "--price", "2000", "--at", "2026-04-01T12:00")
    cli("close", "ETH/USDT", "--price", "1900", "--at", "2026-04-10T12:00")


def tax_rows(cli, method: str) -> list[dict]:
    return json.loads(cli("export", "tax", "--year", "2026", "--method", method, "--format", "json").stdout)["records"]


# (acquired, sold, cost basis, proceeds, gain, term) per disposal row, worked by hand.
EXPECTED = {
    "fifo": [
        ("2025-01-10", "2026-03-01", "4004", "5994", "1990", "long"),  # A
        ("2025-06-01", "2026-03-01", "2502.5", "2997", "494.5", "short"),  # half of B
        ("2025-06-01", "2026-09-01", "2502.5", "2747.25", "244.75", "long"),  # rest of B: past its anniversary
        ("2026-02-01", "2026-09-01", "2252.25", "2747.25", "495", "short"),  # half of C
    ],
    "lifo": [
        ("2026-02-01", "2026-03-01", "4504.5", "5994", "1489.5", "short"),  # C, the newest
        ("2025-06-01", "2026-03-01", "2502.5", "2997", "494.5", "short"),
        ("2025-06-01", "2026-09-01", "2502.5", "2747.25", "244.75", "long"),
        ("2025-01-10", "2026-09-01", "2002", "2747.25", "745.25", "long"),
    ],
    "hifo": [
        ("2025-06-01", "2026-03-01", "5005", "5994", "989", "short"),  # B: 50050 a unit
        ("2026-02-01", "2026-03-01", "2252.25", "2997", "744.75", "short"),  # C: 45045 a unit
        ("2026-02-01", "2026-09-01", "2252.25", "2747.25", "495", "short"),
        ("2025-01-10", "2026-09-01", "2002", "2747.25", "745.25", "long"),  # A: 40040 a unit
    ],
}
TOTALS = {"fifo": ("989.5", "2234.75"), "lifo": ("1984", "990"), "hifo": ("2228.75", "745.25")}


@pytest.mark.parametrize("method", ["fifo", "lifo", "hifo"])
def test_tax_report_matches_the_hand_computed_lots(cli, binance, method):
    tax_ledger(cli)
    rows = tax_rows(cli, method)
    disposals = [r for r in rows if r["section"] == "disposal"]
    got = [
        (r["date_acquired"], r["date_sold"], D(r["cost_basis"]), D(r["proceeds"]), D(r["gain_or_loss"]), r["term"])
        for r in disposals
    ]
    assert got == [(a, s, D(c), D(p), D(g), t) for a, s, c, p, g, t in EXPECTED[method]]
    assert all(r["method"] == method and r["asset"] == "BTC" for r in disposals)
    [margin] = [r for r in rows if r["section"] == "margin"]
    assert (D(margin["realized_pnl"]), D(margin["fees"]), D(margin["net_pnl"])) == (D(100), D("1.95"), D("98.05"))
    summary = {r["description"]: r for r in rows if r["section"] == "summary"}
    short, long = TOTALS[method]
    assert D(summary["short-term gain or loss"]["gain_or_loss"]) == D(short)
    assert D(summary["long-term gain or loss"]["gain_or_loss"]) == D(long)
    assert D(summary["total"]["net_pnl"]) == D(short) + D(long) + D("98.05")


def test_tax_csv_has_form_8949_columns_and_the_method(cli, binance):
    tax_ledger(cli)
    out = cli("export", "tax", "--year", "2026", "--method", "hifo").stdout
    reader = csv.DictReader(io.StringIO(out))
    for column in ("description", "date_acquired", "date_sold", "proceeds", "cost_basis", "gain_or_loss", "term"):
        assert column in reader.fieldnames
    first = next(reader)
    assert first["description"] == "0.1 BTC" and first["method"] == "hifo"
    assert cli("export", "tax", "--year", "2025").stdout.count("disposal") == 0  # nothing sold in 2025
    assert "needs --year" in cli("export", "tax", code=2).stderr
    refused = cli("export", "tax", "--year", "2026", "--method", "avg", code=2).stderr
    assert refused.startswith("error: Invalid value for '--method'") and "'fifo', 'lifo', 'hifo'" in refused


def test_json_export_carries_versions_range_and_a_content_hash(cli, binance):
    tax_ledger(cli)
    payload = json.loads(cli("export", "cashflows", "--format", "json", "--from", "2026-01-01").stdout)
    assert payload["schema_version"] == 1 and payload["portfolio"] == "main" and payload["kind"] == "cashflows"
    assert payload["from"].startswith("2026-01-01") and payload["to"] is None
    assert payload["content_sha256"] == content_hash(payload["records"])
    assert all(r["at"] >= "2026-01-01" for r in payload["records"])
    assert all(isinstance(r["amount"], str) for r in payload["records"])  # decimals as strings
    snapshots = json.loads(cli("export", "snapshots", "--format", "json").stdout)
    assert snapshots["records"] == []
    positions = json.loads(cli("export", "positions", "--format", "json").stdout)["records"]
    assert [p["symbol"] for p in positions] == ["BTC/USDT"] and D(positions[0]["qty"]) == D("0.05")


def test_export_import_export_round_trips_and_a_second_import_adds_nothing(cli, binance, tmp_path):
    tax_ledger(cli)
    cli("open", "SOL/USDT", "--qty", "3", "--price", "100", "--note", '=HYPERLINK("http://x","y")')
    for fmt in ("csv", "json"):
        exported = tmp_path / f"trades.{fmt}"
        cli("export", "trades", "--format", fmt, "-o", str(exported))
        fresh = tmp_path / f"fresh-{fmt}.db"
        cli("import", str(exported), "-p", "copy", "--db", str(fresh))  # creates it, from its starting deposit
        again = cli("export", "trades", "--format", fmt, "-p", "copy", "--db", str(fresh)).stdout
        original = exported.read_text()
        if fmt == "json":
            again_records, original_records = json.loads(again)["records"], json.loads(original)["records"]
            assert again_records == original_records
            assert json.loads(again)["content_sha256"] == json.loads(original)["content_sha256"]
        else:
            assert again == original
        result = cli.json("import", str(exported), "-p", "copy", "--db", str(fresh))
        assert (result["trades_added"], result["closes_added"]) == (0, 0)
        assert result["trades_present"] == 5
        assert cli.json("verify", "--db", str(fresh))["ok"] is True

    # Into another portfolio of the same ledger the ids are the ledger's own, the records otherwise equal.
    cli("import", str(tmp_path / "trades.csv"), "-p", "twin")
    twin = list(csv.DictReader(io.StringIO(cli("export", "trades", "-p", "twin").stdout)))
    main = list(csv.DictReader(io.StringIO(cli("export", "trades").stdout)))
    assert [{k: v for k, v in r.items() if k != "trade_id"} for r in twin] == [
        {k: v for k, v in r.items() if k != "trade_id"} for r in main
    ]


def test_export_import_reproduces_margin_changes_mode_switches_and_cash_flows(cli, binance, tmp_path):
    from test_check import hour, iso

    cli("init", "--balance", "5000", "--at", iso(hour(-30)))
    cli("open", "BTC/USDT", "--qty", "0.1", "--leverage", "10", "--price", "40000", "--at", iso(hour(-20)))
    cli("open", "ETH/USDT", "--qty", "1", "--leverage", "5", "--short", "--price", "2000", "--at", iso(hour(-20)))
    cli("check")  # books the funding of the 20 hours
    cli("add-margin", "1", "100")
    cli("remove-margin", "1", "30")  # 70 added stays: the isolated liquidation price moves away
    cli("add-margin", "2", "50")
    cli("margin-mode", "2", "--cross")  # releases the 50
    cli("deposit", "500")
    cli("withdraw", "200")
    original = cli.json("margin")["account"]["positions"]
    for fmt in ("csv", "json"):
        exported = tmp_path / f"all.{fmt}"
        cli("export", "trades", "--format", fmt, "-o", str(exported))
        kinds = [r["record"] for r in (json.loads(exported.read_text())["records"] if fmt == "json" else [])]
        if fmt == "json":
            assert kinds.count("margin") == 4 and kinds.count("funding") >= 2 and "withdrawal" in kinds
        fresh = ["--db", str(tmp_path / f"copy-{fmt}.db")]
        result = cli.json("import", str(exported), "-p", "main", *fresh)
        assert (result["margin_changes_added"], result["trades_added"]) == (4, 2)
        assert cli.json("verify", *fresh)["ok"] is True
        copy = cli.json("margin", *fresh)["account"]["positions"]
        assert [(p["trade_id"], p["mode"], p["margin"], p["liquidation_price"]) for p in copy] == [
            (p["trade_id"], p["mode"], p["margin"], p["liquidation_price"]) for p in original
        ]
        figures = ("equity", "wallet_balance", "free_margin", "margin_used", "deposits", "withdrawals", "funding")
        ours, theirs = cli.json("value")["valuation"], cli.json("value", *fresh)["valuation"]
        assert {k: theirs[k] for k in figures} == {k: ours[k] for k in figures}
        assert cli("export", "trades", "--format", fmt, *fresh).stdout == exported.read_text() or fmt == "json"
        again = cli.json("import", str(exported), "-p", "main", *fresh)
        assert (again["margin_changes_added"], again["cash_flows_added"], again["trades_added"]) == (0, 0, 0)


def test_spreadsheet_formulas_come_out_inert_and_numbers_stay_numbers(cli, binance):
    cli("init")
    formula = '=HYPERLINK("http://evil.example","click")'
    cli("open", "BTC/USDT", "--qty", "0.01", "--price", "40000", "--note", formula, "--strategy", "+cmd|calc")
    cli("close", "1", "--price", "39000", "--note", "@SUM(A1)")
    out = cli("export", "trades").stdout
    every = list(csv.DictReader(io.StringIO(out)))
    assert every[0]["record"] == "deposit" and every[0]["note"] == "starting balance"
    rows = every[1:]  # the fills
    assert rows[0]["note"] == "'" + formula and rows[0]["strategy"] == "'+cmd|calc"
    assert rows[1]["note"] == "'@SUM(A1)"
    assert rows[1]["realized_pnl"] == "-10.00000000"  # a negative number is left a number
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row.values() if cell)


def test_a_file_with_bad_rows_imports_nothing_and_names_their_lines(cli, binance, tmp_path, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01", "--price", "40000")
    cli("open", "ETH/USDT", "--qty", "0.5", "--price", "2000")
    lines = cli("export", "trades").stdout.splitlines()  # line 2 is the starting deposit
    lines[2] = lines[2].replace("0.01000000", "-5")  # line 3: a negative quantity
    lines[3] = lines[3].replace("ETH/USDT", "ETH/USDT/X")  # line 4: not a symbol
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    cli("init", "copy")
    before = ledger_rows(ledger_path, "trades")
    result = cli("import", str(bad), "-p", "copy", code=2)
    assert "2 bad record(s), nothing imported" in result.stderr
    assert "line 3: qty is out of range" in result.stderr and "line 4: not a symbol" in result.stderr
    assert ledger_rows(ledger_path, "trades") == before
    assert "Traceback" not in result.stderr


def test_backup_taken_while_another_process_writes_opens_and_verifies(cli, binance, tmp_path, ledger_path):
    """Backups are taken until the writer (opens and closes, each in a process of its own) has booked
    at least three records after the first copy, so copies fall between its commands."""
    cli("init")
    cli("value")
    writing = threading.Event()
    writing.set()
    failures: list[str] = []

    def writer() -> None:
        try:
            while writing.is_set():
                for args in (["open", "BTC/USDT", "--qty", "0.01", "--price", "40000"], ["close", "BTC/USDT"]):
                    done = warm.run(args, timeout=120)
                    if done.returncode:
                        failures.append(done.stderr)
                        return
        finally:
            writing.clear()

    def booked() -> int:
        return len(ledger_rows(ledger_path, "trades")) + len(ledger_rows(ledger_path, "closes"))

    thread = threading.Thread(target=writer)
    copies = []
    try:
        thread.start()
        first = None
        while writing.is_set() and (len(copies) < 4 or first is None or booked() < first + 3):
            target = tmp_path / f"backup-{len(copies)}.db"
            out = cli("backup", str(target)).stdout
            assert "integrity check: ok" in out
            copies.append(target)
            first = booked() if first is None else first
            time.sleep(0.05)
    finally:
        writing.clear()
        thread.join(timeout=600)
    assert failures == [] and not thread.is_alive()
    for copy in copies:
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert cli.json("verify", "--db", str(copy))["ok"] is True
        with sqlite3.connect(copy) as conn:
            (opened,) = conn.execute("select count(*) from trades").fetchone()
            (closed,) = conn.execute("select count(*) from closes").fetchone()
        assert opened - closed in (0, 1)  # every copy is a moment between two commands
    assert "already exists" in cli("backup", str(copies[0]), code=2).stderr


def test_json_trades_built_by_sqlite_match_the_python_canonical_encoding(cli, binance, ledger_path):
    cli("init")
    for note in ['q"uote \\ back', "line\nbreak\ttab", "é ✓ 🚀 \u2028", "ctl"]:
        cli("open", "BTC/USDT", "--qty", "0.01", "--price", "40000", "--note", note)
    with sqlite3.connect(ledger_path) as conn:  # refused as input now, but older ledgers may hold one
        conn.execute("update trades set note = ? where id = 4", ["\x01ctl"])
    payload = json.loads(cli("export", "trades", "--format", "json").stdout)
    assert payload["content_sha256"] == content_hash(payload["records"])
    assert [r["note"] for r in payload["records"]][1:3] == ['q"uote \\ back', "line\nbreak\ttab"]  # after the deposit
    # Money text written before it was fixed-point (1E-8) comes out fixed-point, by the Python path.
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("update trades set fee = '1E-8' where id = 1")
    payload = json.loads(cli("export", "trades", "--format", "json").stdout)
    assert payload["records"][1]["fee"] == "0.00000001"
    assert payload["content_sha256"] == content_hash(payload["records"])
    csv_rows = list(csv.DictReader(io.StringIO(cli("export", "trades").stdout)))
    assert csv_rows[1]["fee"] == "0.00000001"


def test_import_refuses_closes_beyond_what_the_ledger_left_open(cli, binance, tmp_path, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1", "--price", "40000")
    cli("close", "1", "--qty", "0.06", "--price", "41000")
    exported = tmp_path / "trades.csv"
    cli("export", "trades", "-o", str(exported))
    # In the ledger the rest is closed at another price, so the file's close is not a duplicate.
    cli("close", "1", "--price", "42000")
    before = ledger_rows(ledger_path, "closes")
    lines = exported.read_text().splitlines()  # the header, the starting deposit, the open, the close
    lines[3] = lines[3].replace("41000.00000000", "41500.00000000").replace(",60.00000000,", ",90.00000000,")
    exported.write_text("\n".join(lines) + "\n")
    result = cli("import", str(exported), code=2)
    assert "would close more than its 0.1" in result.stderr and "nothing imported" in result.stderr
    assert ledger_rows(ledger_path, "closes") == before


@pytest.mark.parametrize(
    ("entry", "closes"),
    [
        ("4194.10398236", [("1.00780964", "9793.74294953"), ("5.23832097", "4287.91346099")]),  # was 1e-8 off
        ("40000.12345679", [("0.1", "41234.56789013"), ("0.2", "39876.54321099")]),
        ("33.33333333", [("0.7", "44.44444447"), ("1.3", "21.99999999"), ("1", "35.12345677")]),
        ("0.12345677", [("333.33333333", "0.13579247"), ("666.66666667", "0.11111113")]),
    ],
)
def test_tax_gains_of_a_trade_add_up_to_its_net_pnl_in_the_ledger_exactly(cli, binance, entry, closes):
    """The ledger rounds each close's PnL once; the tax rows are derived from it, not rounded again."""
    qty = sum((D(q) for q, _ in closes), D(0))
    cli("init", "--balance", "1000000")
    # Offline: no lot step rounds the quantities; --force: the risk rules are beside the point.
    cli("open", "BTC/USDT", "--qty", str(qty), "--price", entry, "--force", "--offline")
    for part, price in closes:
        cli("close", "1", "--qty", part, "--price", f"BTC/USDT={price}", "--offline")
    (trade,) = cli.json("trades")
    rows = json.loads(cli("export", "tax", "--year", str(datetime.now(UTC).year), "--format", "json").stdout)
    disposals = [r for r in rows["records"] if r["section"] == "disposal"]
    assert len(disposals) == len(closes)
    assert sum(D(r["gain_or_loss"]) for r in disposals) == D(trade["net_pnl"])


def test_import_offline_checks_the_symbols_against_the_cached_markets_only(cli, binance, tmp_path, isolated_env):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.01")  # caches the markets list
    [cached] = list(isolated_env.rglob("binance-markets.json"))  # and lets it expire: offline, it still serves
    cached.write_text(cached.read_text().replace('"fetched_at": "', '"fetched_at": "2025-01-01T00:00:00+00:00", "was": "'))
    exported = tmp_path / "trades.csv"
    cli("export", "trades", "-o", str(exported))
    asked = len(binance.requests)
    cli("import", str(exported), "-p", "copy", "--db", str(tmp_path / "copy.db"), "--offline")
    assert len(binance.requests) == asked  # never asked Binance
    assert [t["symbol"] for t in cli.json("trades", "-p", "copy", "--db", str(tmp_path / "copy.db"))] == ["BTC/USDT"]
