"""A cron-like process snapshotting and a trader's process opening and closing, at once, on one
ledger: nothing is lost and nothing fails with "database is locked"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from decimal import Decimal as D
from pathlib import Path

ROUNDS = 12


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "portfolio_cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_snapshots_and_trades_from_two_processes_lose_nothing(binance, ledger_path: Path):
    env = {**os.environ}
    assert run(env, "init", "--balance", "10000").returncode == 0
    assert run(env, "value").returncode == 0  # markets and quotes cached: both loops start warm
    failures: list[str] = []

    def trader() -> None:
        for _ in range(ROUNDS):
            for args in (("open", "BTC/USDT", "--qty", "0.01", "--price", "40000"), ("close", "BTC/USDT")):
                result = run(env, *args, "--price", "BTC/USDT=40100") if args[0] == "close" else run(env, *args)
                if result.returncode != 0:
                    failures.append(f"{' '.join(args)}: {result.stderr}")

    def cron() -> None:
        for _ in range(ROUNDS):
            result = run(env, "snapshot", "--all", "--quiet")
            if result.returncode != 0:
                failures.append(f"snapshot: {result.stderr}")

    threads = [threading.Thread(target=trader), threading.Thread(target=cron)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []

    trades = json.loads(run(env, "trades", "--json").stdout)
    assert len(trades) == ROUNDS and all(t["status"] == "closed" for t in trades)
    # Each round: entry fee 0.4, exit fee 0.401, +1 realized; the cash reconciles to the unit.
    value = json.loads(run(env, "value", "--json").stdout)["valuation"]
    assert D(value["equity"]) == D(10000) + ROUNDS * (D(1) - D("0.4") - D("0.401"))
    history = json.loads(run(env, "history", "--json").stdout)
    assert len(history["daily"]) == 1  # one snapshot for today, however often it ran
    assert run(env, "verify").returncode == 0
