"""Runs the real CLI on a real full (or read-only) file system, inside a private mount namespace
(``unshare -rm``), and reports what each command did. Used by ``test_storage_faults.py``:

    unshare -rm python storage_faults.py PLAN.json RESULTS.json

The plan names a seeded home directory (ledger, config, caches), the commands, the free-space levels
and the modes. For every (mode, level, command) a fresh small tmpfs gets a copy of the home; a filler
file leaves exactly ``level`` bytes free (or the mount is made read-only); the command runs with
its ledger, caches and output files there. Then the filler goes, and what is in the ledger is read
back: the audit log's length, the integrity check, and which output files exist.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import warm

SIZE = 8 << 20  # the tmpfs


def mount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)


def fill(point: Path, free: int) -> None:
    """Leave ``free`` bytes free on the tmpfs at ``point`` (to the page)."""
    filler = point / "filler"
    # Unbuffered: a buffered file would try again, on closing, to write what did not fit.
    with filler.open("wb", buffering=0) as handle:
        block = b"\0" * 65536
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
    # Now full; give back what was asked for.
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - free))


def read_back(home: Path) -> dict:
    ledger = home / "ledger.db"
    conn = sqlite3.connect(ledger)
    try:
        audit = conn.execute("select count(*) from audit_log").fetchone()[0]
        integrity = conn.execute("pragma integrity_check").fetchone()[0]
        records = conn.execute(
            "select (select count(*) from trades), (select count(*) from closes), (select count(*) from cash_flows),"
            " (select count(*) from snapshots), (select count(*) from portfolios)"
        ).fetchone()
    finally:
        conn.close()
    outputs = sorted(p.name for p in (home / "out").iterdir())
    return {"audit": audit, "integrity": integrity, "records": list(records), "outputs": outputs}


def run_one(plan: dict, point: Path, mode: str, level: int, command: list[str]) -> dict:
    mount(point, f"size={SIZE},mode=0700")
    try:
        home = point / "home"
        shutil.copytree(plan["home"], home, symlinks=True)
        (home / "out").mkdir()
        for leftover in ("ledger.db-wal", "ledger.db-shm"):
            (home / leftover).unlink(missing_ok=True)
        for name in plan.get("cold", []):
            (home / "cache" / name).unlink(missing_ok=True)
        before = read_back(home)
        for leftover in ("ledger.db-wal", "ledger.db-shm"):
            (home / leftover).unlink(missing_ok=True)
        if mode == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        else:
            fill(point, level)
        env = {**os.environ, **plan["env"], "PORTFOLIO_HOME": str(home)}
        args = [a.replace("{out}", str(home / "out")).replace("{home}", str(home)) for a in command]
        done = warm.run(args, env=env, timeout=120)  # a process of its own, inside this namespace
        if mode == "read-only":
            subprocess.run(["mount", "-o", "remount,rw", str(point)], check=True)
        (point / "filler").unlink(missing_ok=True)
        after = read_back(home)
        return {
            "mode": mode,
            "level": level,
            "command": command,
            "code": done.returncode,
            "stdout": done.stdout[-2000:],
            "stderr": done.stderr[-4000:],
            "before": before,
            "after": after,
        }
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    point = Path(plan["mount"])
    point.mkdir(parents=True, exist_ok=True)
    results = []
    for mode, levels in plan["modes"].items():
        for level in levels:
            for command in plan["commands"]:
                results.append(run_one(plan, point, mode, level, command))
    Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
