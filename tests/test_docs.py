"""The docs say what the code does: generated pages are current, examples run, links resolve."""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = _load_generator()


def test_generated_reference_pages_are_current():
    stale = gen_docs.stale_pages()
    assert not stale, (
        f"{', '.join(stale)} no longer match the code (a command, option or config key changed): "
        f"run `{gen_docs.REGENERATE}` (or `make docs`) and commit the result"
    )


def _settings_keys(model, prefix: str = "") -> dict[str, object]:
    """Every leaf key of the settings with its default, by dotted name; sections recurse."""
    from portfolio_cli.config import Section, Settings, Targets

    keys: dict[str, object] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            keys |= _settings_keys(annotation, f"{prefix}{name}.")
        elif model is Settings and name == "targets":
            keys |= _settings_keys(Targets, "targets.NAME.")
        elif model is not Settings or name != "portfolios":  # portfolios reuses fees/trading/risk
            keys[prefix + name] = field.default
    return keys


def test_every_config_key_is_explained_in_the_example_config():
    explained = gen_docs.example_comments()
    missing = sorted(set(_settings_keys(_settings())) - set(explained))
    assert not missing, (
        f"config keys without a comment in config/portfolio.example.toml: {missing}; "
        f"add each with a comment above it (it becomes its description), then run `{gen_docs.REGENERATE}`"
    )


def _settings():
    from portfolio_cli.config import Settings

    return Settings


def _leaves(table: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict) and value:
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def test_the_example_configs_values_are_the_built_in_defaults():
    # The example says "the values below are the built-in defaults": hold it to that.
    example = tomllib.loads((ROOT / "config" / "portfolio.example.toml").read_text(), parse_float=Decimal)
    defaults = _settings_keys(_settings())
    written = _leaves(example)
    assert written, "the example config sets no key"
    for key, value in written.items():
        default = defaults[key]
        if isinstance(default, Decimal | float | int) and not isinstance(default, bool):
            assert Decimal(str(value)) == Decimal(str(default)), key
        else:
            assert value == default, key


def _sh_block(page: Path, heading: str) -> list[list[str]]:
    """The ``portfolio`` command lines of the first ``sh`` block under ``heading``, without ``portfolio``."""
    section = page.read_text().split(heading, 1)[1].split("\n#", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]
    assert commands and all(c[0] == "portfolio" for c in commands), commands
    return [c[1:] for c in commands]


def _quick_start() -> list[list[str]]:
    return _sh_block(README, "## Quick start")


def test_readme_quick_start_runs_on_a_fresh_default_account(cli, binance, default_risk_rules):
    # The shipped risk rules, the shipped 10,000 USDT balance and the real ccxt path to the fake Binance.
    results = [cli(*argv) for argv in _quick_start()]
    assert "BTC/USDT" in results[-1].stdout and "ETH/USDT" in results[-1].stdout
    trades = cli.json("trades", "--status", "all")
    assert len(trades) == 2


def test_readme_offline_workflow_runs_as_written(cli, binance, default_risk_rules):
    # After `portfolio init` on the shipped defaults; the last command goes back online (the fake Binance).
    cli("init")
    *offline, online = _sh_block(README, "## Offline")
    assert all("--offline" in argv for argv in offline) and "--offline" not in online
    binance.requests.clear()
    results = [cli(*argv) for argv in offline]
    assert not binance.requests  # offline never touches the network
    assert results[-1].stdout.count("last fill, ") == 2  # both marks: their fills, labelled
    assert cli(*online).stdout.count("live, 0 s") == 2
    assert cli.json("trades")[1]["symbol"] == "ETH/USDT"


def test_the_offline_workflow_on_the_terminal_page_runs_as_written(cli, binance, default_risk_rules):
    commands = _sh_block(ROOT / "docs" / "terminal.md", "## Offline")
    binance.requests.clear()
    results = [cli(*argv) for argv in commands]
    assert not binance.requests
    assert results[-1].stdout.count("last fill, ") == 2


def _table_examples() -> list[str]:
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `")]
    examples = [re.findall(r"`(portfolio [^`]*)`", row.rsplit("|", 2)[-2]) for row in rows]
    return [e for found in examples for e in found]


def _help_examples() -> list[str]:
    import typer

    from portfolio_cli.cli import app

    root = typer.main.get_command(app)
    found = []
    for command in root.commands.values():
        for shown in re.findall(r"\[bold\](portfolio [^\[]*)\[/", command.help or ""):
            # a shell line: each `portfolio …` of it, without redirections
            found += [re.split(r"\s[|>]", part)[0].strip() for part in shown.split("&&")]
    return found


def _parse(example: str) -> None:
    """Parse a documented command line as the CLI would (options, types, choices) without running it."""
    from conftest import click_command  # the app built once, as the CLI runner's invocations use it
    from portfolio_cli.cli import app

    root = click_command(app)
    argv = shlex.split(example)[1:]
    root_ctx = root.make_context("portfolio", list(argv), resilient_parsing=True)
    command = root.get_command(root_ctx, argv[0])
    assert command is not None, f"{example}: no command {argv[0]}"
    command.make_context(argv[0], argv[1:], parent=root_ctx)


@pytest.mark.parametrize("example", sorted(set(_table_examples())))
def test_readme_command_table_examples_parse(example):
    _parse(example)


def test_every_command_is_in_the_readme_table():
    import typer

    from portfolio_cli.cli import app

    names = set(typer.main.get_command(app).commands)
    table = README.read_text().split("| command |", 1)[1].split("\n\n", 1)[0]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    listed = {name for cell in first_cells for name in re.findall(r"`([\w-]+)", cell)}
    assert names <= listed, f"commands missing from the README's table: {sorted(names - listed)}"


@pytest.mark.parametrize("example", sorted(set(_help_examples())))
def test_help_examples_parse(example):
    _parse(example)


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)", README.read_text()))
    pages = {page.name for page in DOCS}
    assert pages <= linked, f"docs pages the README's Documentation list does not link: {sorted(pages - linked)}"


def test_the_exit_code_page_lists_exactly_the_exit_codes():
    from portfolio_cli.errors import ExitCode

    page = (ROOT / "docs" / "exit-codes.md").read_text()
    documented = {int(code) for cell in re.findall(r"^\| ([\d, ]+) \|", page, re.M) for code in cell.split(",")}
    assert documented == {int(code) for code in ExitCode}, (
        "docs/exit-codes.md and errors.ExitCode differ: "
        f"undocumented {sorted({int(c) for c in ExitCode} - documented)}, unknown {sorted(documented - set(ExitCode))}"
    )


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_files_the_docs_name_exist(page):
    named = re.findall(r"`((?:tests|bench|src|scripts|config|docs)/[\w/.-]+\.(?:py|toml|md|sql|json))`", page.read_text())
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing, f"{page.name} names files that do not exist: {missing}"
