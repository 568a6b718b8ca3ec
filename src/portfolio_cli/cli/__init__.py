"""The ``portfolio`` command line: parse, call one service function, render or print JSON."""

from portfolio_cli.cli import allocation, history, records, report, risk  # noqa: F401 (registers their commands)
from portfolio_cli.cli.commands import app


def main() -> None:
    app()


__all__ = ["app", "main"]
