"""The installed tool: entry points, help on every command, offline demo, and import cost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from portfolio_cli.cli import app

COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(cli, command):
    out = cli(command, "--help").stdout
    assert "Example" in out and "portfolio" in out


def test_python_dash_m_runs(isolated_env):
    result = run("-m", "portfolio_cli", "--version")
    assert result.returncode == 0 and result.stdout.startswith("portfolio-cli ")


def test_demo_runs_offline_and_says_it_is_demo_data(cli, isolated_env):
    out = cli("demo").stdout
    assert "DEMO DATA" in out and "bundled prices" in out and "ETH/BTC" in out
    value = cli.json("demo")["valuation"]
    assert value["equity"] == "10324.41400000"  # hand-checked in docs/accounting.md's worked example
    assert not (isolated_env / "ledger.db").exists()  # the demo never touches the real ledger
    # Its month of daily snapshots, backfilled offline from the bundled daily prices, verifies.
    assert "History of demo, by week" in out and "33 daily snapshots (32 backfilled)" in out
    assert cli.json("verify", "--db", str(isolated_env / "demo.db"))["snapshots"] == 33


def _imported_modules(*argv: str) -> set[str]:
    code = (
        "import sys, json\n"
        "from portfolio_cli.cli import app\n"
        f"try:\n    app({list(argv)!r})\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    result = run("-c", code)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_help_and_offline_value_import_neither_ccxt_nor_pandas(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    for argv in (["--help"], ["value", "--offline"], ["trades"]):
        modules = _imported_modules(*argv)
        assert "ccxt" not in modules and "pandas" not in modules, argv


def test_every_service_name_resolves_from_its_module():
    from portfolio_cli import services

    assert sorted(services.__all__) == sorted(services._HOME)
    for name in services.__all__:
        assert getattr(services, name).__module__ == f"portfolio_cli.services.{services._HOME[name]}"


def test_every_command_is_core_or_mapped_to_the_module_that_loads_it():
    import typer

    from portfolio_cli.cli import MODULES, app
    from portfolio_cli.cli.commands import CORE

    assert set(typer.main.get_command(app).commands) == CORE | set(MODULES)


def _package_data() -> list[str]:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    return pyproject["tool"]["setuptools"]["package-data"]["portfolio_cli"]


@pytest.mark.parametrize("pattern", _package_data())
def test_every_package_data_entry_names_files_that_exist(pattern):
    from pathlib import Path

    source = Path(__file__).parent.parent / "src" / "portfolio_cli"
    assert list(source.glob(pattern)), f"pyproject.toml ships {pattern}, which matches no file"


def test_the_installed_package_is_marked_typed_and_carries_its_demo_prices():
    # In CI the project is installed from a built wheel, so this checks what a user gets.
    from importlib.resources import files

    package = files("portfolio_cli")
    assert (package / "py.typed").is_file()
    assert (package / "demo" / "prices.json").is_file()
