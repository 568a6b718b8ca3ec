"""Crash safety: the real CLI is killed with SIGKILL at random moments while it writes (open and close,
a bulk import, a rebalance, a snapshot backfill). After every kill SQLite's integrity check passes,
`portfolio verify` finds no difference, and each command either fully happened or not at all.

The default run kills a few times per kind of write; ``PORTFOLIO_LONG_TESTS=1`` kills many more.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from typer.testing import CliRunner

import warm
from portfolio_cli.cli import app
from portfolio_cli.engine.records import FlowKind, Kind, Side, Trade
from portfolio_cli.ledger import open_ledger
from test_snapshots import day

LONG = os.environ.get("PORTFOLIO_LONG_TESTS") == "1"
# Rounds per kind of write (open and close count twice). Long: 900 runs, of which about two thirds
# are killed (the rest finish first); PORTFOLIO_CRASH_ROUNDS sets another number.
ROUNDS = int(os.environ.get("PORTFOLIO_CRASH_ROUNDS", "180" if LONG else "4"))
SEED = int(os.environ.get("PORTFOLIO_CRASH_SEED", "20261121"))
TRADES = 300  # in the file a killed import brings in


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (warm: see ``warm.py``), as the killed commands run."""
    return warm.run(list(args), timeout=timeout)


def setup(*args: str) -> None:
    """A command that sets the scene: run in this process, since it is not the one killed."""
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stdout + result.stderr


def wal_size(ledger: Path) -> int:
    try:
        return (ledger.parent / (ledger.name + "-wal")).stat().st_size
    except FileNotFoundError:
        return 0


def killed(
    args: list[str], ledger: Path, rng: random.Random, typical: float, committed, spread=(0.1, 1.3)
) -> str:
    """Run the CLI and SIGKILL it; "done" if it finished first, else where the kill landed:
    "before-write" (its write-ahead log had not grown), "mid-write" (it had, and ``committed()`` says
    the command's records are not there: the kill landed inside the write) or "after-commit".

    Every other run is killed a random 0–30 ms after its first write reaches the log, so that kills
    land inside writes and not only during start-up; the others after a random share of ``typical``."""
    process = warm.popen(args, capture=False)
    started, initial = time.monotonic(), wal_size(ledger)
    on_write = rng.random() < 0.5
    deadline = started + (60 if on_write else rng.uniform(*spread) * typical)
    wrote_at = None
    while True:
        if process.poll() is not None:
            return "done"
        now = time.monotonic()
        if wrote_at is None and wal_size(ledger) > initial:
            wrote_at = now
            if on_write:
                deadline = now + rng.uniform(0, 0.03)
        if now >= deadline:
            break
        time.sleep(0.0005)
    process.kill()
    process.wait()
    if wrote_at is None:
        return "before-write"
    return "after-commit" if committed() else "mid-write"


def report(kills: Counter[str]) -> None:
    """Where the kills landed (shown with ``pytest -rA`` or ``-s``); some must land once the command
    has begun writing (inside its write, or once it has committed)."""
    landed = sum(n for where, n in kills.items() if where != "done")
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    print(f"\nkills: {test}: {landed} landed ({dict(kills)})")
    assert kills["mid-write"] + kills["after-commit"] > 0, kills


def rows(ledger: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(ledger) as conn:
        return conn.execute(sql, params).fetchall()


def sound(ledger: Path) -> None:
    """The ledger after a kill: SQLite's own check, and every derived figure rebuilt by verify (run in
    this process: only the killed commands need processes of their own)."""
    assert rows(ledger, "pragma integrity_check") == [("ok",)]
    result = CliRunner().invoke(app, ["verify", "--db", str(ledger)], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout + result.stderr


def duration(args: list[str]) -> float:
    started = time.monotonic()
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    return time.monotonic() - started


@pytest.fixture
def rng() -> random.Random:
    return random.Random(SEED)


@pytest.fixture
def ledger(binance, ledger_path) -> Path:
    setup("init", "--balance", "100000", "--at", (datetime.now(UTC) - timedelta(days=2)).isoformat())
    setup("value")  # markets cached: every killed command starts warm
    return ledger_path


def test_open_and_close_killed_at_random_either_happen_or_not(ledger, rng):
    typical = duration(["open", "BTC/USDT", "--qty", "0.01", "--price", "40000"])
    kills: Counter[str] = Counter()
    for n in range(ROUNDS * 2):
        before = rows(ledger, "select count(*) from trades")[0][0]
        closes = rows(ledger, "select count(*) from closes")[0][0]
        if n % 2 == 0:
            opened = lambda before=before: rows(ledger, "select count(*) from trades")[0][0] > before  # noqa: E731
            opening = ["open", "BTC/USDT", "--qty", "0.01", "--price", "40000"]
            kills[killed(opening, ledger, rng, typical, opened)] += 1
            after = rows(ledger, "select count(*) from trades")[0][0]
            assert after - before in (0, 1)
        else:
            shut = lambda closes=closes: rows(ledger, "select count(*) from closes")[0][0] > closes  # noqa: E731
            kills[killed(["close", "BTC/USDT", "--price", "BTC/USDT=40100"], ledger, rng, typical, shut)] += 1
            assert rows(ledger, "select count(*) from closes")[0][0] - closes in range(0, before + 1)
        sound(ledger)
    report(kills)
    # Every trade has its entry fee (verify checks each close's flows): nothing half-booked.
    trades, fees = rows(
        ledger, "select count(*), (select count(*) from cash_flows where note = 'entry fee') from trades"
    )[0]
    assert trades == fees


def test_a_bulk_import_killed_at_random_imports_all_or_nothing(ledger, tmp_path, rng):
    source, other = tmp_path / "trades.csv", tmp_path / "other.db"
    book = open_ledger(other)
    at = day(-1)
    with book.transaction("test", at):
        portfolio = book.create_portfolio("main", day(-2))
        for n in range(TRADES):
            trade = Trade(0, "BTC/USDT", Side.LONG, Kind.SPOT, None, 1, D("0.01"), D(40000), D(40000), D("0.4"), at)
            trade_id = book.add_trade(portfolio, replace(trade, opened_at=at + timedelta(seconds=n)), forced=False)
            book.add_cash_flow(portfolio, FlowKind.FEE, D("-0.4"), at + timedelta(seconds=n), trade_id, "entry fee")
    book.close()
    setup("export", "trades", "--db", str(other), "-o", str(source))
    setup("init", "probe", "--at", day(-2).isoformat())
    typical = duration(["import", str(source), "-p", "probe"])
    kills: Counter[str] = Counter()
    for n in range(ROUNDS):
        name = f"copy{n}"
        setup("init", name, "--at", day(-2).isoformat())
        sql = "select count(*) from trades join portfolios on portfolios.id = portfolio_id where name = ?"
        imported = lambda name=name, sql=sql: rows(ledger, sql, [name])[0][0] == TRADES  # noqa: E731
        kills[killed(["import", str(source), "-p", name], ledger, rng, typical, imported, (0.2, 1.2))] += 1
        assert rows(ledger, sql, [name])[0][0] in (0, TRADES)
        sound(ledger)
    report(kills)


def test_a_large_import_killed_while_it_builds_its_indexes_imports_all_or_nothing(binance, tmp_path, rng):
    """An import large enough to build the record tables' indexes at the end (dropped, then created
    again, in its transaction): after every kill the ledger has all its trades or none, and every
    index it had."""
    import csv
    import shutil

    from portfolio_cli.ledger import codec
    from portfolio_cli.services import importing
    from portfolio_cli.services.exports import TRADE_COLUMNS

    count = 40_000
    source, template = tmp_path / "large.csv", tmp_path / "template.db"
    at = day(-1)
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, TRADE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for n in range(1, count + 1):
            writer.writerow({
                "record": "open", "trade_id": str(n), "symbol": "BTC/USDT", "side": "long", "kind": "spot",
                "leverage": "1", "qty": "0.00100000", "price": "40000.12345678", "price_usdt": "40000.12345678",
                "fee": "0.04000000", "at": codec.timestamp(at + timedelta(seconds=n)), "forced": "0",
            })  # fmt: skip
    assert source.stat().st_size // importing.LONGEST_RECORD >= importing.DEFER_INDEXES  # large enough
    setup("init", "--balance", "100000", "--at", day(-2).isoformat(), "--db", str(template))
    schema = "select type, name, sql from sqlite_master order by type, name"
    indexes = rows(template, schema)
    probe = tmp_path / "probe.db"
    shutil.copy(template, probe)
    typical = duration(["import", str(source), "-p", "main", "--allow-unknown", "--db", str(probe)])
    kills: Counter[str] = Counter()
    for n in range(ROUNDS):
        ledger = tmp_path / f"copy{n}.db"
        shutil.copy(template, ledger)
        imported = lambda ledger=ledger: rows(ledger, "select count(*) from trades")[0][0] == count  # noqa: E731
        args = ["import", str(source), "-p", "main", "--allow-unknown", "--db", str(ledger)]
        kills[killed(args, ledger, rng, typical, imported, (0.3, 1.2))] += 1
        assert rows(ledger, "select count(*) from trades")[0][0] in (0, count)
        assert rows(ledger, schema) == indexes
        sound(ledger)
    report(kills)


def test_a_rebalance_killed_at_random_books_its_trades_with_its_record_or_nothing(
    ledger, binance, tmp_path, monkeypatch, rng
):
    config = tmp_path / "targets.toml"
    config.write_text("[targets.main]\nweights = { BTC = 30, ETH = 30, USDT = 40 }\ndrift_pct = 2\n")
    monkeypatch.setenv("PORTFOLIO_CONFIG", str(config))
    setup("open", "BTC/USDT", "--qty", "1")  # 40 % at 40,000
    typical = duration(["rebalance", "--json"])
    kills: Counter[str] = Counter()
    for n in range(ROUNDS):
        binance.prices["BTC/USDT"] = D(40000) + D(6000) * (n % 2)  # out of the band again each round
        binance.prices["ETH/USDT"] = D(2000) - D(300) * (n % 2)
        done = len(rows(ledger, "select id from rebalances"))
        executed = lambda done=done: len(rows(ledger, "select id from rebalances")) > done  # noqa: E731
        executing = ["rebalance", "--execute", "--yes", "--force"]
        kills[killed(executing, ledger, rng, typical, executed, (0.3, 1.3))] += 1
        events = dict(rows(ledger, "select id, trades from rebalances"))
        noted = {
            int(note.split()[1])
            for table in ("trades", "closes")
            for (note,) in rows(ledger, f"select note from {table} where note like 'rebalance %'")
        }
        assert noted <= set(events)  # no trade of a rebalance without its record …
        for recorded in map(json.loads, events.values()):  # … and every trade of a record is booked
            for t in recorded:
                if "trade_id" in t:
                    assert rows(ledger, "select count(*) from trades where id = ?", [t["trade_id"]]) == [(1,)]
                for close_id in t.get("close_ids", []):
                    assert rows(ledger, "select count(*) from closes where id = ?", [close_id]) == [(1,)]
        sound(ledger)
    report(kills)


def test_a_snapshot_backfill_killed_at_random_writes_every_day_or_none(binance, ledger_path, rng):
    created = day(-120)
    setup("init", "--at", created.isoformat())
    setup("open", "BTC/USDT", "--qty", "0.1", "--price", "40000", "--at", (created + timedelta(hours=1)).isoformat())
    kills: Counter[str] = Counter()
    for _ in range(ROUNDS):
        backfilled = lambda: rows(ledger_path, "select count(*) from snapshots")[0][0] > 0  # noqa: E731
        kills[killed(["snapshot"], ledger_path, rng, 1.0, backfilled, (0.2, 1.5))] += 1
        count = rows(ledger_path, "select count(*) from snapshots")[0][0]
        assert count in (0, 122), count  # days −121 (its end is the start) … −1 and today, in one transaction
        sound(ledger_path)
        if count:
            with sqlite3.connect(ledger_path) as conn:  # undo it, to be killed again
                conn.execute("delete from snapshot_positions")
                conn.execute("delete from snapshots")
    report(kills)
