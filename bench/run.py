"""Benchmarks named in docs/development.md: ``python bench/run.py [value] [snapshot] [history] [export]
[report] [rebalance] [notify] [import] [backdated] [check] [orders] [verify]`` (all by default).

1. value: wall time of ``portfolio value --offline`` on a ledger with 100 open positions (target:
   median ≤ 0.25 s on a 2-core machine), and of ``portfolio --help`` (≤ 0.25 s); HTTP requests one
   ``portfolio value`` makes on live prices, against the tests' local fake Binance on 127.0.0.1
   (target: 1 ticker request, plus exchangeInfo at most once a day).
2. snapshot: ``portfolio snapshot --all`` over 1,000 portfolios × 10 open positions on cached
   prices (target ≤ 1 s).
3. history: ``portfolio history`` over 5 years of daily snapshots (target ≤ 0.5 s).
4. export: ``portfolio export trades`` of 100,000 trades, CSV and JSON (target ≤ 2 s).
5. report: ``portfolio report`` over 100,000 closed trades and 5 years of daily snapshots (target
   ≤ 1.5 s, peak memory ≤ 300 MB; ``--pdf`` ≤ 5 s).
6. rebalance: a plan for a 100-asset portfolio (target ≤ 0.2 s), the planner and the whole command.
7. notify: what [notify] adds to a ``portfolio check`` with nothing to send (target ≤ 20 ms).
8. import: ``portfolio import`` of a trades export of 1,000,000 trades into an empty ledger (target
   ≤ 60 s, peak memory ≤ 500 MB); ``BENCH_IMPORT_TRADES`` sets how many.
9. backdated: ``portfolio deposit --at`` a year ago on a portfolio with a year of daily snapshots,
   which rebuilds all of them from cached daily candles (target ≤ 1 s for the whole command).
10. check: how long ``check`` holds the ledger's write lock replaying 10 positions over a day of
   minute candles, cached (target ≤ 0.5 s).
11. orders: ``check`` replaying a day of cached minute candles for 20 open orders and 20 positions
   with trailing stops (target ≤ 1 s for the whole check, and the write lock held).
12. verify: ``deposit --at`` five years back on the report's ledger (100,000 trades), which rebuilds
   its 1,826 daily snapshots, then ``verify``; each values every day's end once over the history.

Nothing here touches the internet or the user's ledger: everything lives in a temp directory.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
# BENCH_SOURCE=DIR measures the package in DIR/src (a checkout not installed in this interpreter's
# environment) as its console script would run it; by default the installed console script.
SOURCE = os.environ.get("BENCH_SOURCE")
if SOURCE:
    sys.path.insert(0, str(Path(SOURCE, "src").resolve()))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(SOURCE, "src").resolve()), os.environ.get("PYTHONPATH")])
    )

from fake_binance import FakeBinance, FakeBinanceServer  # noqa: E402
from portfolio_cli.engine.accounting import Lot  # noqa: E402
from portfolio_cli.engine.brackets import flat_table  # noqa: E402
from portfolio_cli.engine.history import snapshot_of  # noqa: E402
from portfolio_cli.engine.records import CashFlow, FlowKind, Kind, MarginMode, Side, Trade  # noqa: E402
from portfolio_cli.engine.valuation import Mark, value_portfolio  # noqa: E402
from portfolio_cli.ledger import codec, open_ledger  # noqa: E402
from portfolio_cli.ledger.migrations import CLOSED_DAY_TRIGGERS, refresh_closed_days  # noqa: E402

# The console script installed beside this interpreter (a venv's bin/), else the one on PATH; with
# BENCH_SOURCE, this interpreter running what the console script runs.
_BESIDE = Path(sys.executable).parent / "portfolio"
_SCRIPT = "import sys; from portfolio_cli.cli import main; sys.argv[0] = 'portfolio'; sys.exit(main())"
PORTFOLIO = (
    [sys.executable, "-c", _SCRIPT]
    if SOURCE
    else [str(_BESIDE) if _BESIDE.exists() else shutil.which("portfolio") or "portfolio"]
)
RUNS = int(os.environ.get("BENCH_RUNS", "21"))
PRICES = {
    "BTC/USDT": Decimal("40000"),
    "ETH/USDT": Decimal("2000"),
    "SOL/USDT": Decimal("100"),
    "ETH/BTC": Decimal("0.05"),
    "DOGE/USDT": Decimal("0.1"),
}
RUNS_SLOW = int(os.environ.get("BENCH_RUNS_SLOW", "7"))


def portfolio(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*PORTFOLIO, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"portfolio {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def timed(env: dict[str, str], *args: str, runs: int = RUNS, cpu: list[float] | None = None) -> list[float]:
    """Wall times of ``runs`` runs; their CPU times (user + system), less sensitive to the load,
    are appended to ``cpu`` when given."""
    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        portfolio(env, *args)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if cpu is not None:
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return times


def describe(label: str, times: list[float]) -> None:
    print(
        f"{label:<44} median {statistics.median(times):.3f} s  min {min(times):.3f} s  "
        f"max {max(times):.3f} s  ({len(times)} runs)"
    )


def bench_value() -> None:
    with tempfile.TemporaryDirectory() as home:
        fake = FakeBinance(prices=dict(PRICES))
        with FakeBinanceServer(fake) as url:
            env = {**os.environ, "PORTFOLIO_HOME": home, "PORTFOLIO_BINANCE_URL": url, "COLUMNS": "120"}
            env.pop("PORTFOLIO_DB", None)
            env.pop("PORTFOLIO_CONFIG", None)
            # As installed: an installed package runs from its bytecode, written here by the set-up runs;
            # without it every timed run would compile the package's sources afresh.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
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
            positions = len(json.loads(portfolio(env, "value", "--offline", "--json").stdout)["valuation"]["positions"])
            print(f"ledger with {positions} open positions")

            print(f"load average {os.getloadavg()[0]:.2f} (2 cores)")
            for label, args in (("portfolio value --offline (100 positions)", ("value", "--offline")),
                                ("portfolio --help", ("--help",))):  # fmt: skip
                cpu: list[float] = []
                describe(label, timed(env, *args, cpu=cpu))
                print(f"  CPU (user + system) median {statistics.median(cpu):.3f} s  min {min(cpu):.3f} s")
            print(f"load average {os.getloadavg()[0]:.2f}")

            (Path(home) / "cache" / "binance-markets.json").unlink()
            fake.requests.clear()
            portfolio(env, "value")
            cold = [r.path for r in fake.requests]
            fake.requests.clear()
            portfolio(env, "value")
            warm = [r.path for r in fake.requests]
            print(f"HTTP requests, portfolio value, markets cache cold: {len(cold)} {cold}")
            print(f"HTTP requests, portfolio value, markets cache warm: {len(warm)} {warm}")


def _offline_env(home: str) -> dict[str, str]:
    env = {**os.environ, "PORTFOLIO_HOME": home, "PORTFOLIO_BINANCE_URL": "http://127.0.0.1:9", "COLUMNS": "120"}
    env.pop("PORTFOLIO_DB", None)
    env.pop("PORTFOLIO_CONFIG", None)
    return env


def _trade(symbol: str, qty: str, price: Decimal, at: datetime, short: bool) -> Trade:
    leverage = 3 if short else 1
    return Trade(
        id=0,
        symbol=symbol,
        side=Side.SHORT if short else Side.LONG,
        kind=Kind.MARGIN if short else Kind.SPOT,
        margin_mode=MarginMode.ISOLATED if short else None,
        leverage=leverage,
        qty=Decimal(qty),
        price=price,
        price_usdt=price,
        fee=Decimal("0.4"),
        opened_at=at,
    )


def bench_snapshot() -> None:
    """1,000 portfolios × 10 positions, written through the ledger's own record methods."""
    with tempfile.TemporaryDirectory() as home:
        env = _offline_env(home)
        now = datetime.now(UTC)
        # Opened just after 00:00 UTC: a portfolio created at 00:00 itself would start from yesterday's
        # snapshot (its end is that moment), which needs yesterday's daily candle, not cached here.
        opened = min(now.replace(hour=0, minute=0, second=1, microsecond=0), now)
        ledger = open_ledger(Path(home) / "ledger.db")
        symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT"]
        sizes = {"BTC/USDT": "0.01", "ETH/USDT": "0.2", "SOL/USDT": "4", "DOGE/USDT": "4000"}
        with ledger.transaction("bench", now):
            for n in range(1000):
                book = ledger.create_portfolio(f"p{n:04d}", opened)
                ledger.add_cash_flow(book, FlowKind.DEPOSIT, Decimal(100000), opened)
                for i in range(10):
                    symbol = symbols[i % len(symbols)]
                    trade = _trade(symbol, sizes[symbol], PRICES[symbol], opened, short=i % 5 == 0)
                    trade_id = ledger.add_trade(book, trade, forced=False)
                    ledger.add_cash_flow(book, FlowKind.FEE, Decimal("-0.4"), opened, trade_id=trade_id)
            ledger.save_quotes([(s, PRICES[s] * Decimal("1.01"), now, "binance") for s in symbols], now)
        ledger.close()
        taken = portfolio(env, "snapshot", "--all", "--offline", "--json").stdout
        print(f"ledger with 1000 portfolios, {taken.count('trade_id')} positions snapshotted")
        describe("portfolio snapshot --all (1000 × 10, cached)", timed(env, "snapshot", "--all", "--offline", "-q"))
        portfolio(env, "verify")


def _five_years_of_snapshots(ledger, book, first: datetime) -> None:
    """One BTC position's daily snapshots from ``first`` to today, saved."""
    ids = [ledger.add_trade(book, _trade("BTC/USDT", "0.1", PRICES["BTC/USDT"], first, False), False)]
    snapshots = []
    for n in range(5 * 365 + 1):
        moment = first + timedelta(days=n)
        mark = PRICES["BTC/USDT"] * (1 + Decimal(n % 97 - 48) / 400)
        lot = _trade("BTC/USDT", "0.1", PRICES["BTC/USDT"], first, False)
        marks = {"BTC/USDT": Mark("BTC/USDT", mark, mark, moment, "candle 1d")}
        lots = [Lot(replace(lot, id=ids[0]), ())]
        flows = [CashFlow(1, FlowKind.DEPOSIT, Decimal(100000), first)]
        valuation = value_portfolio(flows, lots, marks, lambda symbol: flat_table(symbol, Decimal("0.005")))
        # 00:00 of a day is the end of the day before: the snapshot of that day.
        snapshots.append(snapshot_of(book.id, (moment - timedelta(days=1)).date(), moment, True, valuation))
    ledger.save_snapshots(snapshots)


def _five_year_ledger(home: str):
    """A ledger in ``home`` with one portfolio and its five years of daily snapshots."""
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5 * 365)
    ledger = open_ledger(Path(home) / "ledger.db")
    with ledger.transaction("bench", first):
        book = ledger.create_portfolio("main", first)
        ledger.add_cash_flow(book, FlowKind.DEPOSIT, Decimal(100000), first)
        _five_years_of_snapshots(ledger, book, first)
    return ledger, book, first


def bench_history() -> None:
    """Five years of daily snapshots of a one-position portfolio, then the history views."""
    with tempfile.TemporaryDirectory() as home:
        env = _offline_env(home)
        ledger, _, _ = _five_year_ledger(home)
        ledger.close()
        describe("portfolio history (5 years, by month)", timed(env, "history"))
        describe("portfolio history --every day (5 years)", timed(env, "history", "--every", "day"))
        describe("portfolio history --json (5 years)", timed(env, "history", "--json"))


def report_ledger(home: str) -> None:
    """A ledger in ``home`` with 5 years of daily snapshots and 100,000 closed trades (each with its
    entry fee, realized PnL and exit fee flows), BTC's daily candles cached for the benchmark."""
    ledger, book, first = _five_year_ledger(home)
    trades, closes, flows, candles = [], [], [], []
    symbols, strategies = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT"], ["trend", "swing", "dca", None]
    for n in range(2, 100_002):  # trade 1 is the snapshots' BTC position
        opened = first + timedelta(minutes=26 * n)
        closed = opened + timedelta(hours=n % 48 + 1)
        price = Decimal(40000 + n % 1000)
        exit_price = price + Decimal(n % 7 - 3)
        pnl = codec.money((exit_price - price) * Decimal("0.001"))
        symbol, strategy = symbols[n % 4], strategies[n % 7 % 4]
        trades.append((n, book.id, symbol, "long", "spot", None, 1, "0.00100000", f"{price}", f"{price}",
                       "0.04000000", codec.timestamp(opened), None, None, strategy, None, 0))  # fmt: skip
        closes.append((n, "0.00100000", f"{exit_price}", f"{exit_price}", "0.04000000", pnl,
                       codec.timestamp(closed), None, "manual"))  # fmt: skip
        flows += [
            (book.id, "fee", "-0.04000000", codec.timestamp(opened), n, "entry fee"),
            (book.id, "realized_pnl", pnl, codec.timestamp(closed), n, None),
            (book.id, "fee", "-0.04000000", codec.timestamp(closed), n, "exit fee"),
        ]
    for n in range(5 * 365 + 1):
        price = f"{PRICES['BTC/USDT'] * (1 + Decimal(n % 89 - 44) / 300):.2f}"
        candles.append(("BTC/USDT", "1d", codec.timestamp(first + timedelta(days=n)), price, price, price, price))
    conn = ledger.conn
    conn.execute("begin")
    with days_summed_once(conn):
        conn.executemany(
            "insert into trades (id, portfolio_id, symbol, side, kind, margin_mode, leverage, qty, price, price_usdt, "
            "fee, opened_at, stop_loss, take_profit, strategy, note, forced) values (" + ",".join("?" * 17) + ")",
            trades,
        )
        conn.executemany(
            "insert into closes (trade_id, qty, price, price_usdt, fee, realized_pnl, closed_at, note, reason) "
            "values (?,?,?,?,?,?,?,?,?)",
            closes,
        )
        conn.executemany(
            "insert into cash_flows (portfolio_id, kind, amount, at, trade_id, note) values (?,?,?,?,?,?)", flows
        )
    conn.executemany("insert into candles values (?,?,?,?,?,?,?)", candles)
    conn.execute("commit")
    ledger.close()


@contextmanager
def days_summed_once(conn: sqlite3.Connection) -> Iterator[None]:
    """Rows inserted in bulk, straight into the tables, as an import writes them: the triggers that
    sum each day's closed trades afresh from its trades' totals (``migrations.m017_closed_days``)
    are off meanwhile, and every day is summed once at the end (the per-trade totals stay kept by
    their triggers)."""
    names = ", ".join(f"'{name}'" for name in CLOSED_DAY_TRIGGERS)
    paused = conn.execute(f"select sql from sqlite_master where type = 'trigger' and name in ({names})").fetchall()
    for name in CLOSED_DAY_TRIGGERS:
        conn.execute(f"drop trigger {name}")
    yield
    refresh_closed_days(conn)
    for (sql,) in paused:
        conn.execute(sql)


def bench_report() -> None:
    """The full report over ``report_ledger``, offline: wall time and peak memory."""
    with tempfile.TemporaryDirectory() as home:
        env = _offline_env(home)
        # As installed: from bytecode (as in bench_value), written by the first run, not timed.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        report_ledger(home)
        portfolio(env, "report", "--offline", "--pdf", str(Path(home) / "warm.pdf"))
        runs = {"runs": RUNS_SLOW}
        describe("portfolio report (100,000 trades, 5 years)", timed(env, "report", "--offline", **runs))
        describe("portfolio report --json (same)", timed(env, "report", "--offline", "--json", **runs))
        html = str(Path(home) / "report.html")
        describe("portfolio report --html (same)", timed(env, "report", "--offline", "--html", html, "--force", **runs))
        pdf = str(Path(home) / "report.pdf")
        describe("portfolio report --pdf (same)", timed(env, "report", "--offline", "--pdf", pdf, "--force", **runs))
        for shown, args in (
            ("report", ("report", "--offline")),
            ("report --json", ("report", "--offline", "--json")),
            ("report --pdf", ("report", "--offline", "--pdf", pdf, "--force")),
        ):
            peak, cpu = child_usage(env, *args)
            load = os.getloadavg()[0]
            print(f"peak memory, portfolio {shown}: {peak:.0f} MB, CPU {cpu:.2f} s (load average {load:.1f})")
        closed = portfolio(env, "report", "--offline", "--json").stdout
        print("closed trades in the report:", closed.split('"count": ')[1].split(",")[0])


def child_usage(env: dict[str, str], *args: str) -> tuple[float, float]:
    """The largest resident set (MB) and the CPU time (user + system, s) of one run of the command.
    It is started from a small interpreter whose children are only that command: a child forked
    from this one would count this process's memory as its own until it execs."""
    probe = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime)"
    )
    result = subprocess.run([sys.executable, "-c", probe, *PORTFOLIO, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"portfolio {' '.join(args)} failed: {result.stderr.strip()}")
    maxrss, cpu = result.stdout.split()
    return int(maxrss) / 1024, float(cpu)  # Linux reports KiB


def bench_export() -> None:
    """100,000 trades, a third of them closed, inserted in bulk in the ledger's own formats."""
    with tempfile.TemporaryDirectory() as home:
        env = _offline_env(home)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)
        ledger = open_ledger(Path(home) / "ledger.db")
        with ledger.transaction("bench", start):
            book = ledger.create_portfolio("main", start)
            ledger.add_cash_flow(book, FlowKind.DEPOSIT, Decimal(1_000_000), start)
        trades, closes, flows = [], [], []
        for n in range(1, 100_001):
            at = codec.timestamp(start + timedelta(minutes=5 * n))
            price = f"{40000 + n % 1000}.12345678"
            trades.append((n, book.id, "BTC/USDT", "long", "spot", None, 1, "0.00100000", price, price, "0.04000000",
                           at, None, None, "bench", f"note {n}", 0))  # fmt: skip
            flows.append((book.id, "fee", "-0.04000000", at, n, "entry fee"))
            if n % 3 == 0:
                closes.append((n, "0.00100000", price, price, "0.04000000", "0.00000000", at, None, "manual"))
        conn = ledger.conn
        conn.execute("begin")
        with days_summed_once(conn):
            conn.executemany(
                "insert into trades (id, portfolio_id, symbol, side, kind, margin_mode, leverage, qty, price, "
                "price_usdt, fee, opened_at, stop_loss, take_profit, strategy, note, forced) values ("
                + ",".join("?" * 17) + ")",
                trades,
            )
            conn.executemany(
                "insert into cash_flows (portfolio_id, kind, amount, at, trade_id, note) values (?,?,?,?,?,?)", flows
            )
            conn.executemany(
                "insert into closes (trade_id, qty, price, price_usdt, fee, realized_pnl, closed_at, note, reason) "
                "values (?,?,?,?,?,?,?,?,?)",
                closes,
            )
        conn.execute("commit")
        ledger.close()
        out = str(Path(home) / "trades")
        runs = {"runs": RUNS_SLOW}
        describe(
            "portfolio export trades, 100,000 (CSV)",
            timed(env, "export", "trades", "--force", "-o", out + ".csv", **runs),
        )
        describe(
            "portfolio export trades, 100,000 (JSON)",
            timed(env, "export", "trades", "--format", "json", "--force", "-o", out + ".json", **runs),
        )
        print(f"CSV rows written: {Path(out + '.csv').read_text().count(chr(10)) - 1}")


def bench_rebalance() -> None:
    """A plan for a portfolio of 100 assets, every one of them outside its band: the planner alone
    (in this process), and the whole `portfolio rebalance --offline` command on a real ledger."""
    from portfolio_cli.engine.market import MarketRules
    from portfolio_cli.engine.rebalance import Account, Holding, RebalanceTargets, plan_rebalance
    from portfolio_cli.engine.rules import Exposure, RiskLimits

    assets = [f"A{n:03d}" for n in range(100)]
    holdings, positions = {}, []
    for n, asset in enumerate(assets):
        price, qty = Decimal(1 + n), Decimal(100 + 5 * n) / Decimal(1 + n)  # uneven: 100 … 595 USDT
        exposure = Exposure(f"{asset}/USDT", asset, price * qty, price * qty)
        positions.append(exposure)
        rules = MarketRules(f"{asset}/USDT", Decimal("0.001"), Decimal("0.001"), Decimal(5))
        holdings[asset] = Holding(asset, price, price * qty, qty, rules, ((qty, exposure),))
    invested = sum((h.exposure for h in holdings.values()), Decimal(0))
    account = Account(invested + 10_000, Decimal(10_000), Decimal(10_000), Decimal(0), tuple(positions))
    weights = {a: Decimal("0.8") for a in assets} | {"USDT": Decimal(20)}
    limits = RiskLimits(Decimal(5), Decimal("0.1"), Decimal(50), Decimal(100), 200, 5, 1, 125, Decimal(200),
                        Decimal(5), Decimal(100))  # fmt: skip
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        plan = plan_rebalance(
            account, holdings, RebalanceTargets(weights, Decimal("0.2")), Decimal("0.001"), Decimal(5), limits
        )
        times.append(time.perf_counter() - started)
    describe("rebalance plan, 100 assets (planner)", times)
    print(f"  {len(plan.trades)} trades, {len(plan.skipped)} left as they are")

    with tempfile.TemporaryDirectory() as home:
        env = _offline_env(home)
        now = datetime.now(UTC)
        ledger = open_ledger(Path(home) / "ledger.db")
        with ledger.transaction("bench", now):
            book = ledger.create_portfolio("main", now - timedelta(days=1))
            ledger.add_cash_flow(book, FlowKind.DEPOSIT, invested + 10_000, now - timedelta(days=1))
            for asset, held in holdings.items():
                trade = replace(_trade(f"{asset}/USDT", "1", held.price, now, False), qty=held.spot_qty, fee=Decimal(0))
                ledger.add_trade(book, trade, forced=False)
            ledger.save_quotes([(f"{a}/USDT", h.price, now, "binance") for a, h in holdings.items()], now)
        ledger.close()
        config = Path(home) / "config.toml"
        listed = ", ".join(f"{a} = 0.8" for a in assets)
        config.write_text(
            f"[targets.main]\nweights = {{ {listed}, USDT = 20 }}\ndrift_pct = 0.2\n"
            "[portfolios.main.risk]\nmax_open_positions = 200\nmax_correlated_pct = 100\nmax_total_risk_pct = 100\n"
        )
        env["PORTFOLIO_CONFIG"] = str(config)
        trades = portfolio(env, "rebalance", "--offline", "--json").stdout.count('"side"')
        print(f"  portfolio rebalance planned {trades} trades")
        describe("portfolio rebalance --offline (100 assets)", timed(env, "rebalance", "--offline", runs=RUNS_SLOW))


def bench_import() -> None:
    """A trades export of BENCH_IMPORT_TRADES trades (default 1,000,000; a third closed), written in
    the export's own CSV format, imported into a fresh portfolio: wall time and peak memory."""
    import csv

    from portfolio_cli.services.exports import TRADE_COLUMNS

    count = int(os.environ.get("BENCH_IMPORT_TRADES", "1000000"))
    with tempfile.TemporaryDirectory() as home:
        env = _offline_env(home)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=400)
        source = Path(home) / "trades.csv"
        with source.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, TRADE_COLUMNS, lineterminator="\n")
            writer.writeheader()
            for n in range(1, count + 1):
                at = start + timedelta(seconds=30 * n)
                price = f"{40000 + n % 1000}.12345678"
                opened = {"record": "open", "trade_id": str(n), "symbol": "BTC/USDT", "side": "long", "kind": "spot",
                          "leverage": "1", "qty": "0.00100000", "price": price, "price_usdt": price,
                          "fee": "0.04000000", "at": codec.timestamp(at), "forced": "0"}  # fmt: skip
                writer.writerow({c: opened.get(c) for c in TRADE_COLUMNS})
                if n % 3 == 0:
                    closed = {**opened, "record": "close", "realized_pnl": "0.00000000", "reason": "manual",
                              "at": codec.timestamp(at + timedelta(seconds=10))}  # fmt: skip
                    writer.writerow({c: closed.get(c) for c in TRADE_COLUMNS})
        assert portfolio(env, "init", "copy", "--balance", "1000000", "--at", start.isoformat()).returncode == 0
        args = ("import", str(source), "-p", "copy", "--allow-unknown")
        started = time.monotonic()
        peak, cpu = child_usage(env, *args)
        elapsed = time.monotonic() - started
        load = os.getloadavg()[0]
        print(f"portfolio import, {count:,} trades ({source.stat().st_size / 2**20:.0f} MiB CSV): {elapsed:.1f} s, "
              f"CPU {cpu:.1f} s, peak memory {peak:.0f} MB (load average {load:.1f})")  # fmt: skip
        verified = json.loads(portfolio(env, "verify", "--json").stdout)
        print(f"  verify after the import: ok {verified['ok']}")


def bench_notify() -> None:
    """What notifications add to a `portfolio check` that has nothing to send (target ≤ 20 ms): the
    command with and without [notify] (runs interleaved), and the notify step alone, in this process."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_webhook import Webhook, WebhookServer

    with tempfile.TemporaryDirectory() as home, WebhookServer(Webhook()) as hook:
        fake = FakeBinance(prices=dict(PRICES))
        with FakeBinanceServer(fake) as url:
            env = {**os.environ, "PORTFOLIO_HOME": home, "PORTFOLIO_BINANCE_URL": url, "COLUMNS": "120"}
            for key in ("PORTFOLIO_DB", "PORTFOLIO_CONFIG", "PORTFOLIO_NOTIFY__URLS"):
                env.pop(key, None)
            for n in range(5):  # five portfolios, each with a margin position at an ok margin level
                portfolio(env, "init", f"p{n}", "--balance", "10000")
                portfolio(env, "open", "BTC/USDT", "-p", f"p{n}", "--qty", "0.01", "--leverage", "3", "--cross")
                portfolio(env, "open", "ETH/USDT", "-p", f"p{n}", "--qty", "0.1", "--short", "--leverage", "2")
            notifying = {**env, "PORTFOLIO_NOTIFY__URLS": hook.destination("bench")}
            portfolio(notifying, "check", "--quiet")  # the first check of each portfolio, and the migration
            plain_times, notify_times = [], []
            for _ in range(RUNS_SLOW):
                plain_times += timed(env, "check", "--quiet", runs=1)
                notify_times += timed(notifying, "check", "--quiet", runs=1)
            describe("portfolio check, 5 portfolios, no [notify]", plain_times)
            describe("portfolio check, 5 portfolios, [notify], nothing to send", notify_times)
            added = statistics.median(notify_times) - statistics.median(plain_times)
            print(f"  difference of the medians: {added * 1000:+.1f} ms (whole commands: mostly noise)")
            probe = (
                "import time, portfolio_cli.services.check, portfolio_cli.cli.support as s; t = time.perf_counter(); "
                "import portfolio_cli.services.notify; print(time.perf_counter() - t)"
            )
            # As installed: compiled once (an installed package ships its bytecode), then imported.
            compiled = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            run = [sys.executable, "-c", probe]
            imports = [
                float(subprocess.run(run, capture_output=True, text=True, check=True, env=compiled).stdout)
                for _ in range(RUNS + 1)
            ][1:]
            describe("  importing the notify module (fresh process)", imports)

            # The session reads its home and [notify] from the environment: set for this part only, so
            # that the benchmarks after this one do not inherit a webhook that is gone.
            saved_environ = dict(os.environ)
            os.environ.update({"PORTFOLIO_HOME": home, "PORTFOLIO_BINANCE_URL": url})
            os.environ["PORTFOLIO_NOTIFY__URLS"] = hook.destination("bench")
            from portfolio_cli.services.check import run_check
            from portfolio_cli.session import Session

            steps = []
            for _ in range(RUNS):
                session = Session.create("portfolio check (bench)")
                result = run_check(session)
                started = time.perf_counter()
                from portfolio_cli.services.notify import after_check

                delivery = after_check(session, result)
                steps.append(time.perf_counter() - started)
                session.close()
                assert delivery is None  # nothing to send, nothing queued
            os.environ.clear()
            os.environ.update(saved_environ)
            describe("  the notify step of check alone (in process)", steps)
            added = statistics.median(imports) + statistics.median(steps)
            print(f"  added by [notify] with nothing to send: {added * 1000:.1f} ms (target ≤ 20 ms)")
            print(f"  apprise imported: {'apprise' in sys.modules}; messages sent: {len(hook.messages)}")


def _candles(symbol: str, timeframe: str, first: datetime, count: int, step: timedelta, base: Decimal):
    from portfolio_cli.engine.records import Candle

    out = []
    for n in range(count):
        price = base * (1 + Decimal(n % 97 - 48) / 4000)
        high, low = price * Decimal("1.001"), price * Decimal("0.999")
        out.append(Candle(symbol, timeframe, first + n * step, price, high, low, price))
    return out


def bench_backdated() -> None:
    """A portfolio a year old with one BTC position and a snapshot for every day, then a deposit dated
    a year ago: every snapshot from then on is dropped and rebuilt in the same command."""
    with tempfile.TemporaryDirectory() as home:
        env = _offline_env(home)
        now = datetime.now(UTC)
        first = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=365)
        ledger = open_ledger(Path(home) / "ledger.db")
        with ledger.transaction("bench", now):
            book = ledger.create_portfolio("main", first)
            ledger.add_cash_flow(book, FlowKind.DEPOSIT, Decimal(100000), first)
            trade_id = ledger.add_trade(book, _trade("BTC/USDT", "0.1", PRICES["BTC/USDT"], first, False), False)
            ledger.add_cash_flow(book, FlowKind.FEE, Decimal("-0.4"), first, trade_id=trade_id, note="entry fee")
            daily = _candles("BTC/USDT", "1d", first - timedelta(days=1), 367, timedelta(days=1), PRICES["BTC/USDT"])
            ledger.save_candles(daily)  # the day before too: its end is the portfolio's first moment
            ledger.save_quotes([("BTC/USDT", PRICES["BTC/USDT"], now, "binance")], now)
        ledger.close()
        portfolio(env, "snapshot", "--offline", "-q")
        at = (first + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M")
        days = len(__import__("json").loads(portfolio(env, "history", "--every", "day", "--json").stdout)["daily"])
        print(f"  a year of daily snapshots: {days}")
        describe(
            "deposit --at a year ago (rebuilds the year)",
            timed(env, "deposit", "1", "--at", at, runs=RUNS_SLOW),  # cached prices: no request
        )
        verified = subprocess.run([*PORTFOLIO, "verify"], env=env, capture_output=True, text=True)
        print(f"  verify after the rebuilds: exit {verified.returncode}")
        if verified.returncode:
            print(verified.stdout[-2000:])


def bench_verify() -> None:
    """The report's ledger (100,000 closed trades, five years of daily snapshots), then a deposit dated
    five years ago, which rebuilds every snapshot from the records, and ``verify``, which rebuilds them
    all again to compare: each values 1,826 days' ends over the whole history."""
    with tempfile.TemporaryDirectory() as home:
        env = _offline_env(home)
        report_ledger(home)
        first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5 * 365)
        ledger = open_ledger(Path(home) / "ledger.db")
        with ledger.transaction("bench", first):  # every traded symbol's days priced: all can be rebuilt
            book = ledger.portfolio("main")  # the snapshots' BTC position (trade 1) pays its entry fee
            ledger.add_cash_flow(book, FlowKind.FEE, Decimal("-0.4"), first, trade_id=1, note="entry fee")
            day_before = first - timedelta(days=1)  # its end is the portfolio's first moment
            ledger.save_candles(_candles("BTC/USDT", "1d", day_before, 1, timedelta(days=1), PRICES["BTC/USDT"]))
            for symbol, price in (("ETH/USDT", 2000), ("SOL/USDT", 100), ("DOGE/USDT", "0.1")):
                ledger.save_candles(_candles(symbol, "1d", first - timedelta(days=1), 5 * 365 + 2, timedelta(days=1),
                                             Decimal(price)))  # fmt: skip
        ledger.close()
        at = first.strftime("%Y-%m-%dT%H:%M")  # the portfolio's first moment: every snapshot is at or after it
        describe("deposit --at five years ago (100,000 trades)", timed(env, "deposit", "1", "--at", at, runs=1))
        cpu: list[float] = []
        describe("verify (100,000 trades, 1,826 snapshots)", timed(env, "verify", runs=RUNS_SLOW, cpu=cpu))
        print(f"  CPU (user + system) median {statistics.median(cpu):.3f} s")


def bench_check() -> None:
    """10 margin positions opened a day ago, every minute candle of that day cached: the time from
    check's BEGIN IMMEDIATE to its COMMIT (the replay itself), measured in-process."""
    from contextlib import contextmanager

    from portfolio_cli.ledger.connection import Connection
    from portfolio_cli.services import check
    from portfolio_cli.session import Session

    with tempfile.TemporaryDirectory() as home:
        os.environ.update({"PORTFOLIO_HOME": home, "PORTFOLIO_BINANCE_URL": "http://127.0.0.1:9"})
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        first = now - timedelta(days=1)
        ledger = open_ledger(Path(home) / "ledger.db")
        symbols = [f"C{n}/USDT" for n in range(10)]
        with ledger.transaction("bench", now):
            book = ledger.create_portfolio("main", first)
            ledger.add_cash_flow(book, FlowKind.DEPOSIT, Decimal(1_000_000), first)
            for symbol in symbols:
                ledger.add_trade(book, _trade(symbol, "10", Decimal(100), first, True), False)
                ledger.save_candles(_candles(symbol, "1m", first, 1440, timedelta(minutes=1), Decimal(100)))
            ledger.save_quotes([(s, Decimal(100), now, "binance") for s in symbols], now)
        ledger.close()
        check.MINUTE_CANDLES_UP_TO = timedelta(days=2)  # replay the whole day minute by minute
        held: list[float] = []
        real = Connection.transaction

        spans: list[float] = []

        @contextmanager
        def timed_transaction(self, command, now=None):
            started = time.perf_counter()  # BEGIN IMMEDIATE to COMMIT
            with real(self, command, now) as inside:
                yield inside
            spans.append(time.perf_counter() - started)

        Connection.transaction = timed_transaction
        try:
            for _ in range(RUNS_SLOW):
                with sqlite3.connect(Path(home) / "ledger.db") as conn:  # each run replays the whole day again
                    conn.execute("delete from checks")
                    conn.execute("delete from cash_flows where kind = 'funding'")
                spans.clear()
                session = Session.create("check", offline=True)
                result = check.run_check(session, ["main"])
                session.close()
                held.append(max(spans))  # the replay's transaction; the longest the lock was held
            print(f"  replayed {result.portfolios[0].timeframe} candles since {result.portfolios[0].since:%H:%M}")
        finally:
            Connection.transaction = real
        describe("check: write lock held (10 positions, 1 day of 1m)", held)


def bench_orders() -> None:
    """20 spot positions with a trailing stop and 20 open limit orders, on 20 symbols, a day old,
    every minute candle of that day cached: the whole ``check`` (in-process) and its write lock."""
    from contextlib import contextmanager

    from portfolio_cli.engine.records import Order, OrderType
    from portfolio_cli.ledger.connection import Connection
    from portfolio_cli.services import check
    from portfolio_cli.session import Session

    with tempfile.TemporaryDirectory() as home:
        os.environ.update({"PORTFOLIO_HOME": home, "PORTFOLIO_BINANCE_URL": "http://127.0.0.1:9"})
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        first = now - timedelta(days=1)
        ledger = open_ledger(Path(home) / "ledger.db")
        symbols = [f"C{n}/USDT" for n in range(20)]
        with ledger.transaction("bench", now):
            book = ledger.create_portfolio("main", first)
            ledger.add_cash_flow(book, FlowKind.DEPOSIT, Decimal(1_000_000), first)
            for symbol in symbols:
                trailing = replace(_trade(symbol, "10", Decimal(100), first, False), trailing_pct=Decimal(50))
                ledger.add_trade(book, trailing, False)
                # a limit buy far below the market: it rests all day, tested at every candle
                ledger.add_order(
                    book,
                    Order(0, symbol, Side.LONG, Kind.SPOT, None, 1, OrderType.LIMIT, Decimal(50), Decimal(10),
                          Decimal(500), first),
                )  # fmt: skip
                ledger.save_candles(_candles(symbol, "1m", first, 1440, timedelta(minutes=1), Decimal(100)))
            ledger.save_quotes([(s, Decimal(100), now, "binance") for s in symbols], now)
        ledger.close()
        check.MINUTE_CANDLES_UP_TO = timedelta(days=2)  # replay the whole day minute by minute
        whole: list[float] = []
        held: list[float] = []
        real = Connection.transaction
        spans: list[float] = []

        @contextmanager
        def timed_transaction(self, command, now=None):
            started = time.perf_counter()
            with real(self, command, now) as inside:
                yield inside
            spans.append(time.perf_counter() - started)

        Connection.transaction = timed_transaction
        try:
            for _ in range(RUNS_SLOW):
                with sqlite3.connect(Path(home) / "ledger.db") as conn:  # each run replays the whole day again
                    conn.execute("delete from checks")
                spans.clear()
                started = time.perf_counter()
                session = Session.create("check", offline=True)
                result = check.run_check(session, ["main"])
                session.close()
                whole.append(time.perf_counter() - started)
                held.append(max(spans))
            events = result.portfolios[0].events
            print(f"  replayed {result.portfolios[0].timeframe} candles since {result.portfolios[0].since:%H:%M}, "
                  f"{len(events)} events")  # fmt: skip
        finally:
            Connection.transaction = real
        describe("orders: check (20 orders, 20 trailing, 1 day of 1m)", whole)
        describe("orders: write lock held", held)


BENCHES = {
    "value": bench_value,
    "snapshot": bench_snapshot,
    "history": bench_history,
    "export": bench_export,
    "report": bench_report,
    "rebalance": bench_rebalance,
    "notify": bench_notify,
    "import": bench_import,
    "backdated": bench_backdated,
    "check": bench_check,
    "orders": bench_orders,
    "verify": bench_verify,
}


if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHES):
        BENCHES[name]()
