from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import typer
import typer.testing
from hypothesis import settings
from typer.testing import CliRunner

# rich fixes a console's width from COLUMNS when the console is made (at import); pytest-xdist's workers
# start with COLUMNS set, which would pin every table to it. Each test sets COLUMNS itself.
os.environ.pop("COLUMNS", None)

# No test asserts wall-clock time, and hypothesis's per-example deadline is one: on a loaded machine it
# fails examples that are merely slow.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

from fake_binance import FakeBinance, FakeBinanceServer  # noqa: E402 (after the environment above)
from portfolio_cli import session as session_module  # noqa: E402 (after the environment above)
from portfolio_cli.cli import app  # noqa: E402 (after the environment above)


def _parts(typer_app: typer.Typer) -> list:
    """What Typer builds a Click command from: the app's callback, commands and groups."""
    parts: list = [typer_app, typer_app.registered_callback, *typer_app.registered_commands]
    for group in typer_app.registered_groups:
        parts += [group, *(_parts(group.typer_instance) if group.typer_instance else [])]
    return parts


_built: dict[tuple[int, ...], tuple[object, list]] = {}


def click_command(typer_app: typer.Typer):
    """The app as a Click command, built once per set of commands. Typer rebuilds it from every
    command's signature on each ``CliRunner.invoke`` (about 0.1 s for the whole app, thousands of
    times a run); a test that registers a command changes the set, so it gets a fresh build. The
    parts are kept with the build, so no other object can take their ids."""
    parts = _parts(typer_app)
    key = tuple(map(id, parts))
    if key not in _built:
        _built[key] = (typer.main.get_command(typer_app), parts)
    return _built[key][0]


typer.testing._get_command = click_command  # what typer's CliRunner.invoke calls with the app

# The slowest tests, slowest first, start the run: spread over workers (pytest -n, with --dist
# worksteal), a long test started last would keep one worker busy while the others sit idle.
SLOWEST_FIRST = (
    "test_storage_faults.py::test_a_full_or_read_only_disk",
    "test_order_independence.py::",
    "test_concurrency.py::test_cron_and_a_trader",
    "test_perpetuals.py::test_more_settlements_than_one_page",
    "test_fuzz.py::test_every_command_survives",
    "test_fuzz.py::",
    "test_report.py::test_html_report_is_self_contained",
    "test_packaging.py::test_help_and_offline_value",
    "test_crash_safety.py::",
    "test_exports.py::test_backup_taken_while",
    "test_terminal.py::test_watch",
    "test_concurrency.py::",
)


MEMORY = Path("/dev/shm")
_made_basetemp: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Temporary directories in memory where the system has it: every ledger commit waits for the disk
    (SQLite syncs it), which no test is about (the crash tests kill processes, which a sync does not
    change). pytest-xdist's workers are given directories under the controller's, so this runs once."""
    if config.option.basetemp is None and MEMORY.is_dir() and os.access(MEMORY, os.W_OK):
        import tempfile

        made = Path(tempfile.mkdtemp(prefix="portfolio-tests-", dir=MEMORY))
        _made_basetemp.append(made)
        config.option.basetemp = str(made)


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    for made in _made_basetemp:
        shutil.rmtree(made, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.nodeid.rsplit("/", 1)[-1]
        return next((n for n, prefix in enumerate(SLOWEST_FIRST) if name.startswith(prefix)), len(SLOWEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


START_PRICES = {
    "BTC/USDT": Decimal("40000"),
    "ETH/USDT": Decimal("2000"),
    "SOL/USDT": Decimal("100"),
    "ETH/BTC": Decimal("0.05"),
    "DOGE/USDT": Decimal("0.1"),
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every path the tool could touch points into a temp dir; no test sees the user's ledger or config."""
    for key in list(os.environ):
        if key.startswith("PORTFOLIO_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("PORTFOLIO_HOME", str(home))
    # No real network: an unset base URL would mean api.binance.com, so point it at a closed port.
    monkeypatch.setenv("PORTFOLIO_BINANCE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PORTFOLIO_PRICES__TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("PORTFOLIO_PRICES__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("PORTFOLIO_PRICES__RETRY_BUDGET_SECONDS", "5")
    monkeypatch.setenv("COLUMNS", "160")
    # Tests about trading mechanics size positions freely; tests of the risk rules use
    # `default_risk_rules`, which restores the shipped defaults.
    for key, value in RELAXED_RISK.items():
        monkeypatch.setenv(key, value)
    return home


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait a command asks for (retry backoff, Retry-After), in seconds; nothing is waited."""
    asked: list[float] = []
    monkeypatch.setattr(session_module, "pause", asked.append)
    return asked


RELAXED_RISK = {
    "PORTFOLIO_RISK__MAX_POSITION_PCT": "100",
    "PORTFOLIO_RISK__MAX_TOTAL_RISK_PCT": "100",
    "PORTFOLIO_RISK__CASH_RESERVE_PCT": "0",
    "PORTFOLIO_RISK__MAX_CORRELATED_PCT": "100",
}


@pytest.fixture
def default_risk_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in RELAXED_RISK:
        monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def binance_server() -> Iterator[FakeBinanceServer]:
    """One fake Binance for the whole run; each test gets a fresh fake behind it (``binance``)."""
    server = FakeBinanceServer(FakeBinance())
    with server:
        yield server


@pytest.fixture
def binance(binance_server: FakeBinanceServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBinance]:
    fake = binance_server.reset(FakeBinance(prices=dict(START_PRICES)))
    monkeypatch.setenv("PORTFOLIO_BINANCE_URL", fake.url)
    yield fake
    binance_server.reset(FakeBinance())  # a late request from this test lands in a fake nobody reads


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int | None = 0):
        result = self.runner.invoke(app, list(args), catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    def json(self, *args: str):
        import json

        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture
def ledger_path(isolated_env: Path) -> Path:
    return isolated_env / "ledger.db"


def ledger_rows(path: Path, table: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"select * from {table} order by rowid").fetchall()
