"""Benchmarks named in the README: ``python bench/run.py``.

1. Wall time of ``portfolio value --offline`` on a ledger with 100 open positions (target: median
   ≤ 0.30 s on a 2-core machine), and of ``portfolio --help``.
2. HTTP requests one ``portfolio value`` makes on live prices, against the tests' local fake Binance
   on 127.0.0.1 (target: 1 ticker request, plus exchangeInfo at most once a day).

Nothing here touches the internet or the user's ledger: everything lives in a temp directory.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_binance import FakeBinance, FakeBinanceServer  # noqa: E402

# The console script installed beside this interpreter (a venv's bin/), else the one on PATH.
_BESIDE = Path(sys.executable).parent / "portfolio"
PORTFOLIO = str(_BESIDE) if _BESIDE.exists() else shutil.which("portfolio") or "portfolio"
RUNS = int(os.environ.get("BENCH_RUNS", "21"))
PRICES = {
    "BTC/USDT": Decimal("40000"),
    "ETH/USDT": Decimal("2000"),
    "SOL/USDT": Decimal("100"),
    "ETH/BTC": Decimal("0.05"),
    "DOGE/USDT": Decimal("0.1"),
}


def portfolio(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([PORTFOLIO, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"portfolio {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def timed(env: dict[str, str], *args: str) -> list[float]:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        portfolio(env, *args)
        times.append(time.perf_counter() - started)
    return times


def describe(label: str, times: list[float]) -> None:
    print(
        f"{label:<44} median {statistics.median(times):.3f} s  min {min(times):.3f} s  "
        f"max {max(times):.3f} s  ({len(times)} runs)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        fake = FakeBinance(prices=dict(PRICES))
        with FakeBinanceServer(fake) as url:
            env = {**os.environ, "PORTFOLIO_HOME": home, "PORTFOLIO_BINANCE_URL": url, "COLUMNS": "120"}
            env.pop("PORTFOLIO_DB", None)
            env.pop("PORTFOLIO_CONFIG", None)
            config = Path(home) / "bench.toml"
            # 100 positions, 25 per symbol: the risk limits are opened up for the benchmark ledger.
            config.write_text(
                "[risk]\nmax_open_positions = 1000\nmax_positions_per_symbol = 100\nmax_position_pct = 100\n"
                "max_total_risk_pct = 100\nmax_correlated_pct = 100\ncash_reserve_pct = 0\n"
            )
            env["PORTFOLIO_CONFIG"] = str(config)

            portfolio(env, "init", "--balance", "100000")
            symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "ETH/BTC"]
            sizes = {"BTC/USDT": "0.01", "ETH/USDT": "0.2", "SOL/USDT": "4", "ETH/BTC": "0.2"}  # ~400 USDT each
            for i in range(100):
                symbol = symbols[i % len(symbols)]
                short = ["--short"] if i % 5 == 0 and symbol != "ETH/BTC" else []
                portfolio(env, "open", symbol, "--qty", sizes[symbol], *short)
            positions = portfolio(env, "value", "--offline", "--json").stdout.count('"trade_id"')
            print(f"ledger with {positions} open positions")

            describe("portfolio value --offline (100 positions)", timed(env, "value", "--offline"))
            describe("portfolio --help", timed(env, "--help"))

            (Path(home) / "cache" / "binance-markets.json").unlink()
            fake.requests.clear()
            portfolio(env, "value")
            cold = [r.path for r in fake.requests]
            fake.requests.clear()
            portfolio(env, "value")
            warm = [r.path for r in fake.requests]
            print(f"HTTP requests, portfolio value, markets cache cold: {len(cold)} {cold}")
            print(f"HTTP requests, portfolio value, markets cache warm: {len(warm)} {warm}")


if __name__ == "__main__":
    main()
