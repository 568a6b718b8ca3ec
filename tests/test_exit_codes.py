"""Every failure becomes its exit code in one place, whether or not a command catches anything itself.

The commands registered here do what a careless new command would: raise without any wrapper.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from portfolio_cli.cli import app
from portfolio_cli.errors import LedgerFailure, NotFound, PortfolioError, RuleRefused


@pytest.fixture
def careless_commands() -> Iterator[None]:
    """Test-only commands on the real app, gone again after the test."""
    before = list(app.registered_commands)

    @app.command("raise-not-found")
    def raise_not_found() -> None:
        raise NotFound("no trade 99 in portfolio 'main'")

    @app.command("raise-ledger-failure")
    def raise_ledger_failure() -> None:
        raise LedgerFailure("the ledger is locked")

    @app.command("raise-bug")
    def raise_bug() -> None:
        {}["missing"]  # a plain KeyError, as a typo would raise

    @app.command("return-incomplete")
    def return_incomplete() -> int:
        from portfolio_cli.errors import ExitCode

        return ExitCode.INCOMPLETE

    yield
    app.registered_commands[:] = before


@pytest.mark.parametrize(
    ("command", "code", "line"),
    [
        ("raise-not-found", 4, "error: no trade 99 in portfolio 'main'"),
        ("raise-ledger-failure", 6, "error: the ledger is locked"),
    ],
)
def test_an_expected_failure_is_one_line_and_its_code_without_any_wrapper(cli, careless_commands, command, code, line):
    result = cli(command, code=code)
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""


def test_an_unexpected_exception_is_one_line_saying_it_is_a_bug_with_the_saved_traceback(
    cli, careless_commands, isolated_env
):
    result = cli("raise-bug", code=70)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: KeyError: 'missing' — this is a bug")
    assert "Traceback" not in result.stderr
    saved = Path(line.rpartition("traceback saved to ")[2])
    assert saved.parent == isolated_env / "cache" / "tracebacks"
    text = saved.read_text()
    assert "Traceback (most recent call last)" in text
    assert "raise_bug" in text and "KeyError: 'missing'" in text
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_a_bug_whose_traceback_cannot_be_saved_still_exits_70_in_one_line(cli, careless_commands, isolated_env):
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "cache").write_text("a file where the cache directory would be")
    result = cli("raise-bug", code=70)
    [line] = result.stderr.splitlines()
    assert "this is a bug" in line and "the traceback could not be saved" in line


def test_a_returned_outcome_is_the_exit_code(cli, careless_commands):
    assert cli("return-incomplete", code=13).stderr == ""


def test_every_error_class_has_its_own_documented_code():
    from portfolio_cli.errors import ExitCode

    members = ExitCode.__members__.values()
    assert len({int(code) for code in members}) == len(members)  # each number has one name, one meaning
    assert {cls.exit_code for cls in (PortfolioError, RuleRefused)} == {ExitCode.REFUSED}
    assert NotFound.exit_code == 4 and LedgerFailure.exit_code == 6
    page = (Path(__file__).parents[1] / "docs" / "exit-codes.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} |" in page, f"exit code {int(code)} ({code.name}) is not documented"


def test_a_usage_error_and_no_arguments_are_exit_2(cli):
    assert cli("value", "--no-such-option", code=2).stderr.startswith("error: No such option")
    assert "Usage: portfolio" in cli(code=2).stdout


def test_the_cli_uses_no_private_typer_module_and_matches_no_exception_by_name():
    source = Path(__file__).parents[1] / "src" / "portfolio_cli"
    for path in source.rglob("*.py"):
        text = path.read_text()
        assert "typer._click" not in text and "from click" not in text, path
        assert "__name__ ==" not in text, path
