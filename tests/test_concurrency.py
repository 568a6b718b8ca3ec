"""A cron-like process (snapshot, check) and a trader's process (open, close) on one ledger at once,
for a bounded time: no command fails, none says "database is locked", and nothing is lost: every
trade and close is there and the cash reconciles to the unit. The commands run in processes of their
own (warm: see ``warm.py``). The default run has the trader open and close 8 times while cron keeps
going; ``PORTFOLIO_LONG_TESTS=1`` runs both for 90 s."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from decimal import Decimal as D
from pathlib import Path

import warm

LONG = os.environ.get("PORTFOLIO_LONG_TESTS") == "1"
SECONDS = 90 if LONG else 600  # the default run ends with the trader's rounds, well before this
ROUNDS = 10**9 if LONG else 8  # the trader's opens and closes


def run(*args: str) -> subprocess.CompletedProcess:
    return warm.run(list(args), timeout=60)


def test_cron_and_a_trader_at_once_lose_nothing(binance, ledger_path: Path):
    assert run("init", "--balance", "10000").returncode == 0
    assert run("value").returncode == 0  # markets and quotes cached: both start warm
    failures: list[str] = []
    counts = {"open": 0, "close": 0, "snapshot": 0, "check": 0}
    deadline = time.monotonic() + SECONDS

    def record(name: str, result: subprocess.CompletedProcess) -> None:
        counts[name] += 1
        if result.returncode != 0 or "locked" in result.stderr:
            failures.append(f"{name} exit {result.returncode}: {result.stderr.strip()}")

    trading = threading.Event()
    trading.set()

    def trader() -> None:
        try:
            for _ in range(ROUNDS):
                if time.monotonic() >= deadline:
                    break
                record("open", run("open", "BTC/USDT", "--qty", "0.01", "--price", "40000"))
                record("close", run("close", "BTC/USDT", "--price", "BTC/USDT=40100"))
        finally:
            trading.clear()

    def cron() -> None:
        while trading.is_set() or counts["check"] == 0:
            record("snapshot", run("snapshot", "--all", "--quiet"))
            record("check", run("check", "--quiet"))

    threads = [threading.Thread(target=trader), threading.Thread(target=cron)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)
    assert not any(thread.is_alive() for thread in threads)
    print(f"\nconcurrent commands: {counts} ({sum(counts.values())} in all)")
    assert failures == []
    assert counts["open"] == counts["close"] > 0 and counts["snapshot"] > 0 and counts["check"] > 0

    trades = json.loads(run("trades", "--json").stdout)
    assert len(trades) == counts["open"] and all(t["status"] == "closed" for t in trades)
    # Each round: entry fee 0.4, exit fee 0.401, 1 realized; the cash reconciles to the unit.
    value = json.loads(run("value", "--json").stdout)["valuation"]
    assert D(value["equity"]) == D(10000) + counts["open"] * (D(1) - D("0.4") - D("0.401"))
    assert len(json.loads(run("history", "--json").stdout)["daily"]) == 1  # one snapshot for today
    assert run("verify").returncode == 0


COLD_ROUNDS = int(os.environ.get("PORTFOLIO_COLD_ROUNDS", "85" if LONG else "2"))
AT_ONCE = 6  # commands started together in each round


def test_concurrent_cold_starts_never_fail(binance, ledger_path: Path, isolated_env: Path, monkeypatch):
    """Rounds of commands started at once, each round with no markets cache: every one fetches the
    markets and writes the cache at the same moment (they once collided on one temporary file)."""
    # Each round opens a position: the long run's 85 would meet the per-symbol (5) and open-position
    # (10) limits, whose refusals (exit 1) are the rules at work, not cold starts failing.
    monkeypatch.setenv("PORTFOLIO_RISK__MAX_POSITIONS_PER_SYMBOL", "1000")
    monkeypatch.setenv("PORTFOLIO_RISK__MAX_OPEN_POSITIONS", "1000")
    assert run("init", "--balance", "100000").returncode == 0
    commands = [
        ["value"],
        ["open", "BTC/USDT", "--qty", "0.01", "--price", "40000"],
        ["size", "ETH/USDT", "--stop", "1900"],
        ["check", "--quiet"],
        ["snapshot", "--quiet"],
        ["value", "--json"],
    ]
    failures: list[str] = []
    ran = 0
    for _ in range(COLD_ROUNDS):
        for cached in (isolated_env / "cache").glob("*"):
            cached.unlink()
        processes = [warm.popen(commands[n % len(commands)]) for n in range(AT_ONCE)]
        for n, process in enumerate(processes):
            _, err = process.communicate(timeout=120)
            ran += 1
            if process.returncode != 0 or "Traceback" in err or "locked" in err:
                failures.append(f"{commands[n % len(commands)]} exit {process.returncode}: {err.strip()[-300:]}")
    print(f"\ncold starts run at once: {ran} commands in {COLD_ROUNDS} rounds of {AT_ONCE}")
    assert failures == []
    assert json.loads((isolated_env / "cache" / "binance-markets.json").read_text())["markets"]
