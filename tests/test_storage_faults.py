"""Storage failures at every write point: each writing command runs on a real tmpfs left with 0 to a
few hundred KiB free, and on one mounted read-only (see ``storage_faults.py``). Every run ends in
exit 0 with its writes committed, or exit 6 with one ``error:`` line naming the cause ("the disk is
full", "read-only") and the ledger exactly as it was; never a traceback. Plus a failed COMMIT and
an I/O error injected in-process, and a ledger from a newer version of the tool.

Needs ``unshare -rm`` (a private mount namespace) for the tmpfs; skipped where it is not allowed.
``PORTFOLIO_LONG_TESTS=1`` sweeps many more free-space levels."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import warm
from portfolio_cli.ledger import store

LONG = os.environ.get("PORTFOLIO_LONG_TESTS") == "1"
LEVELS = list(range(0, 320 * 1024, 8 * 1024)) if LONG else [0, 48 * 1024]
YEAR = str(datetime.now(UTC).year)

RECORDING = [  # commands that book records: exit 0 exactly when the audit log grew
    ["init", "second"],
    ["deposit", "500"],
    ["open", "SOL/USDT", "--qty", "1"],
    ["close", "1", "--price", "BTC/USDT=41000"],
    ["snapshot", "--all"],
    ["check"],
    ["import", "{home}/import.csv"],
]
WRITING = [  # commands that write a file: exit 0 exactly when it is there
    ["backup", "{out}/copy.db"],
    ["export", "trades", "-o", "{out}/trades.csv"],
    ["export", "tax", "--year", YEAR, "-o", "{out}/tax.csv"],
    ["report", "--html", "{out}/report.html", "--offline"],
]
READING = [["value"], ["trades"]]  # write nothing but caches
COMMANDS = RECORDING + WRITING + READING


def namespaces_work() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && touch /mnt/x"],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.fixture
def seeded_home(cli, binance, isolated_env, tmp_path) -> Path:
    other = tmp_path / "other.db"
    cli("init", "--db", str(other))
    for symbol in ("BTC/USDT", "ETH/USDT", "DOGE/USDT"):
        cli("open", symbol, "--qty", "0.01" if symbol != "DOGE/USDT" else "100", "--db", str(other))
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    cli("open", "ETH/USDT", "--qty", "1")
    cli("close", "2")
    cli("snapshot")
    cli("export", "trades", "--db", str(other), "-o", str(isolated_env / "import.csv"))
    with sqlite3.connect(isolated_env / "ledger.db") as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
    return isolated_env


def run_plan(home: Path, tmp_path: Path, modes: dict) -> list[dict]:
    plan = tmp_path / "plan.json"
    results = tmp_path / "results.json"
    plan.write_text(
        json.dumps(
            {
                "home": str(home),
                "mount": str(tmp_path / "mnt"),
                "env": {},
                "cold": ["binance-markets.json", "binance-ticks.json"],  # a cold start: the markets cache too
                "commands": COMMANDS,
                "modes": modes,
            }
        )
    )
    driver = Path(__file__).with_name("storage_faults.py")
    subprocess.run(["unshare", "-rm", sys.executable, str(driver), str(plan), str(results)], check=True, timeout=3600)
    return json.loads(results.read_text())


def problems_of(run: dict) -> list[str]:
    """What is wrong with one run: an undocumented exit, a traceback, a commit that says it failed
    or a failure that committed, more than one error line, a cause not named."""
    code, err, before, after = run["code"], run["stderr"], run["before"], run["after"]
    command = run["command"]
    found = []
    if "Traceback" in err or code not in (0, 6):
        found.append(f"exit {code}: {err[-300:]}")
    if after["integrity"] != "ok":
        found.append(f"integrity: {after['integrity']}")
    if command in RECORDING:
        if (code == 0) != (after["audit"] > before["audit"]):
            found.append(f"exit {code} but audit {before['audit']} -> {after['audit']}")
    elif after["audit"] != before["audit"] or after["records"] != before["records"]:
        found.append("a command that books nothing changed the records")
    if command in WRITING:
        made = set(after["outputs"]) - set(before["outputs"])
        if (code == 0) != bool(made) or any(name.startswith(".") for name in made):
            found.append(f"exit {code} with outputs {sorted(made)}")
    if code == 0 and after["outputs"] and any(n.startswith(".") for n in after["outputs"]):
        found.append(f"a temporary file was left: {after['outputs']}")
    if code == 6:
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        cause = "read-only" if run["mode"] == "read-only" else "the disk is full"
        if len(errors) != 1 or cause not in errors[0]:
            found.append(f"not one error naming {cause!r}: {err[-300:]}")
        if after["records"] != before["records"] or after["audit"] != before["audit"]:
            found.append("a failed command changed the ledger")
    return found


@pytest.mark.skipif(not namespaces_work(), reason="needs unshare -rm to mount a small tmpfs")
def test_a_full_or_read_only_disk_at_every_write_point_is_exit_6_or_committed(seeded_home, tmp_path):
    runs = run_plan(seeded_home, tmp_path, {"full": LEVELS, "read-only": [0]})
    failures = [(r["mode"], r["level"], " ".join(r["command"]), p) for r in runs for p in problems_of(r)]
    codes: dict[int, int] = {}
    for run in runs:
        codes[run["code"]] = codes.get(run["code"], 0) + 1
    print(f"\nstorage faults: {len(runs)} runs ({len(LEVELS)} free-space levels and read-only × "
          f"{len(COMMANDS)} commands), exit codes {codes}, {len(failures)} wrong")
    assert failures == []
    full = [r for r in runs if r["mode"] == "full"]
    assert any(r["code"] == 6 for r in full)  # the disk did run out
    assert all(r["code"] == 6 for r in runs if r["mode"] == "read-only" and r["command"] in RECORDING + WRITING)


def test_a_failed_commit_is_exit_6_and_books_nothing(cli, binance, ledger_path, monkeypatch):
    cli("init")
    before = sqlite3.connect(ledger_path).execute("select count(*) from audit_log").fetchone()[0]
    opened = store.open_ledger

    def refusing_commit(path):
        ledger = opened(path)
        deny = lambda action, *rest: sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_TRANSACTION else 0  # noqa: E731
        ledger.conn.set_authorizer(deny)  # SQLite's own hook: the COMMIT statement fails
        return ledger

    monkeypatch.setattr("portfolio_cli.session.open_ledger", refusing_commit)
    result = cli("deposit", "100", code=6)
    assert result.stderr.startswith("error: cannot use the ledger") and len(result.stderr.splitlines()) == 1
    monkeypatch.setattr("portfolio_cli.session.open_ledger", opened)
    after = sqlite3.connect(ledger_path).execute("select count(*) from audit_log").fetchone()[0]
    assert after == before and Decimal(cli.json("value", "--offline")["valuation"]["equity"]) == 10000


def limited_open(size: int) -> subprocess.CompletedProcess:
    """``open`` where no file may grow past ``size`` bytes: a write past it fails (EFBIG), which
    SQLite reports as an I/O error."""
    args = ["open", "BTC/USDT", "--qty", "0.1", "--note", "x" * 900]
    return warm.run(args, timeout=60, limits={"RLIMIT_FSIZE": (size, size)})


def test_an_io_error_while_writing_is_exit_6_and_books_nothing(cli, binance, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    with sqlite3.connect(ledger_path) as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
        before = list(conn.iterdump())
    done = limited_open(16384)  # not even room for the WAL index (32 KiB)
    assert done.returncode == 6, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: cannot use the ledger")
    assert "I/O error" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    with sqlite3.connect(ledger_path) as conn:
        assert list(conn.iterdump()) == before


def test_an_io_error_after_the_commit_is_a_warning_and_exit_0(cli, binance, ledger_path):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    # The WAL grows by whole frames (a 32-byte header, then 24 + 4,096 bytes a page): the smallest
    # limit at which the trade commits leaves no frame for the quote cache written after it.
    for frames in range(1, 40):
        with sqlite3.connect(ledger_path) as conn:
            conn.execute("pragma wal_checkpoint(truncate)")
        done = limited_open(32 + frames * (24 + 4096))
        if done.returncode != 6:
            break
        assert "Traceback" not in done.stderr and len(cli.json("trades")) == 1
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: the fetched prices were not cached") and "I/O error" in done.stderr
    assert len(cli.json("trades")) == 2


def test_a_backdated_record_committed_on_a_full_disk_is_exit_0_and_its_snapshots_wait(cli, binance, ledger_path):
    """A record dated before existing snapshots commits, then its stale snapshots are rebuilt in a
    transaction of their own: when the disk has room for the record only, the command still says it
    committed (exit 0, a warning), and the next snapshot rebuilds the days."""
    start = datetime.now(UTC) - timedelta(days=4)
    cli("init", "--at", start.isoformat())
    cli("snapshot")
    deposit = ["deposit", "100", "--at", (start + timedelta(days=1, hours=12)).isoformat(), "--note", "x" * 900]

    def deposits() -> int:
        with sqlite3.connect(ledger_path) as conn:
            return conn.execute("select count(*) from cash_flows where kind = 'deposit'").fetchone()[0]

    for frames in range(1, 40):  # the smallest limit at which the deposit commits (see above)
        with sqlite3.connect(ledger_path) as conn:
            conn.execute("pragma wal_checkpoint(truncate)")
        done = warm.run(deposit, timeout=60, limits={"RLIMIT_FSIZE": (32 + frames * 4120,) * 2})
        if done.returncode != 6:
            break
        assert deposits() == 1, f"exit 6, but the deposit was booked: {done.stderr}"
    assert done.returncode == 0, done.stderr
    assert "could not be rebuilt" in done.stderr and "next 'portfolio snapshot'" in done.stderr
    assert deposits() == 2
    cli("snapshot")
    cli("verify")


def test_a_ledger_from_a_newer_version_is_refused_and_left_untouched(cli, binance, ledger_path):
    cli("init")
    conn = sqlite3.connect(ledger_path, isolation_level=None)
    conn.execute(
        "insert into _sqlite_migrations (migration_set, name, applied_at) values ('portfolio_cli', ?, ?)",
        ["m099_from_the_future", "2030-01-01T00:00:00"],
    )
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    before = ledger_path.read_bytes()
    for args in (["deposit", "100"], ["value", "--offline"], ["trades"]):
        result = cli(*args, code=6)
        assert "newer version of portfolio-cli" in result.stderr and "m099_from_the_future" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert ledger_path.read_bytes() == before


def test_a_damaged_ledger_is_not_backed_up_and_the_message_says_how_to_salvage(cli, binance, ledger_path, tmp_path):
    cli("init")
    for n in range(30):
        cli("deposit", "10", "--note", f"deposit {n} " + "x" * 300)
    conn = sqlite3.connect(ledger_path, isolation_level=None)
    conn.execute("pragma wal_checkpoint(truncate)")
    root = conn.execute("select rootpage from sqlite_master where name = 'cash_flows'").fetchone()[0]
    page = conn.execute("pragma page_size").fetchone()[0]
    conn.close()
    with ledger_path.open("r+b") as handle:  # scribble over cash_flows' root page, its header first
        handle.seek((root - 1) * page)
        handle.write(b"\xff" * page)
    target = tmp_path / "copy.db"
    result = cli("backup", str(target), code=6)
    assert "fails its integrity check" in result.stderr and ".recover" in result.stderr
    assert not target.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy")] == []
