"""The installed tool: entry points, help on every command, offline demo, and import cost."""

from __future__ import annotations

import json
import os
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


def test_help_wraps_its_paragraphs_at_the_terminal_not_at_the_source(cli, monkeypatch):
    """The docstring breaks ``order``'s paragraph after "is cancelled"; the help joins it, and the
    terminal wraps it: at 200 columns the sentence runs on one line."""
    monkeypatch.setenv("COLUMNS", "200")
    out = cli("order", "--help").stdout
    assert "until it fills, is cancelled or expires. The risk rules run when it fills" in out
    assert "\n Examples: " in out  # the examples still start a line


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


def _imported_modules(*argv: str, code: int = 0, whole_names: bool = False) -> set[str]:
    """The top-level packages (or, ``whole_names``, the modules) that ``portfolio ARGV`` imports, run
    as the installed script runs."""
    names = "sys.modules" if whole_names else "{m.split('.')[0] for m in sys.modules}"
    program = (
        "import sys, json, atexit\n"
        f"atexit.register(lambda: print(json.dumps(sorted({names}))))\n"
        f"sys.argv = ['portfolio', *{list(argv)!r}]\n"
        "from portfolio_cli.cli import main\n"
        "main()\n"
    )
    result = run("-c", program)
    assert result.returncode == code, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


HEAVY = ("ccxt", "pandas", "matplotlib", "sqlite_utils")


def test_help_and_offline_value_import_none_of_the_heavy_libraries(cli, binance):
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    for argv in (["--help"], ["value", "--offline"], ["value", "--help"], ["trades"]):
        modules = _imported_modules(*argv)
        assert not modules & set(HEAVY), (argv, sorted(modules & set(HEAVY)))


def test_offline_value_loads_neither_the_write_path_nor_the_report_maths(cli, binance):
    # Start-up is most of a read command's time: value reads the ledger, so what only booking or
    # a report uses (a dozen frozen dataclasses each) stays unloaded.
    cli("init")
    cli("open", "BTC/USDT", "--qty", "0.1")
    modules = _imported_modules("value", "--offline", whole_names=True)
    unneeded = {"engine.booking", "engine.rules", "engine.trades", "engine.metrics", "services.amend", "services.report"}
    assert not {f"portfolio_cli.{name}" for name in unneeded} & modules


def test_collection_is_off_through_start_up_and_on_for_the_command(cli, binance):
    cli("init")
    program = (
        "import gc, sys\n"
        "import portfolio_cli.services.valuation as v\n"
        "seen = []\n"
        "original = v.value\n"
        "v.value = lambda *a, **k: (seen.append((gc.isenabled(), gc.get_freeze_count() > 0)), original(*a, **k))[1]\n"
        "from portfolio_cli.session import Session\n"
        "create = Session.create\n"
        "Session.create = lambda *a, **k: (seen.append((gc.isenabled(), gc.get_freeze_count() > 0)), create(*a, **k))[1]\n"
        "sys.argv = ['portfolio', 'value', '--offline', '--json']\n"
        "from portfolio_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print('command', seen, 'frozen at the end', gc.get_freeze_count() > 0, 'exit', code)\n"
    )
    result = run("-c", program)
    # Off while the session opens; on for the command's work (a long import or replay frees its
    # garbage), with what start-up built frozen so that no collection walks it; at the end every
    # object is left to the exit, frozen, not walked by a last collection.
    last = result.stdout.splitlines()[-1]
    assert last == "command [(False, False), (True, True)] frozen at the end True exit 0", result.stderr


def test_help_imports_neither_markdown_nor_pygments():
    # Typer's help renderer imports rich's Markdown and Traceback, which a help screen never uses.
    for argv in (["--help"], [], ["open", "--help"]):
        modules = _imported_modules(*argv, code=0 if argv else 2)  # `portfolio` alone: the help, exit 2
        assert not modules & {"markdown_it", "pygments"}, (argv, sorted(modules & {"markdown_it", "pygments"}))


def test_the_help_renderer_still_renders_markdown_and_tracebacks_when_asked():
    # The stand-ins load the real classes on first use.
    code = (
        "import io, sys\n"
        "from portfolio_cli.cli.help import load_help_renderer\n"
        "load_help_renderer()\n"
        "import typer.rich_utils as r\n"
        "assert 'markdown_it' not in sys.modules\n"
        "from rich.console import Console\n"
        "console = Console(file=io.StringIO(), width=40)\n"
        "console.print(r.Markdown('**bold** text'))\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n"
        "    console.print(r.Traceback.from_exception(type(e), e, e.__traceback__))\n"
        "import rich.markdown, rich.traceback\n"
        "print(type(r.Markdown('x')) is rich.markdown.Markdown)\n"
        "print('ZeroDivisionError' in console.file.getvalue())\n"
    )
    result = run("-c", code)
    assert result.stdout.split() == ["True", "True"], result.stderr


@pytest.mark.parametrize("argv", [["--help"], [], ["valu"], ["value", "--help"], ["close", "--help"]])
def test_the_entry_point_shows_what_the_whole_app_shows(argv):
    # main() builds only what the run can use (the named command, or the commands' names and help).
    env = {**os.environ, "COLUMNS": "100"}
    whole = run("-c", f"from portfolio_cli.cli import app; app({argv!r}, prog_name='portfolio')", env=env)
    entry = run(
        "-c", f"import sys; sys.argv = ['portfolio', *{argv!r}]; from portfolio_cli.cli import main; main()", env=env
    )
    assert (entry.returncode, entry.stdout, entry.stderr) == (whole.returncode, whole.stdout, whole.stderr)
    assert entry.stdout or entry.stderr


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
