"""The ``portfolio`` command line: parse, call one service function, render or print JSON.

The core commands live in ``commands``; the others in modules loaded only when their command runs
(or for ``--help``), so that a quick command does not pay for building thirty others at startup.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

# Command → the module that registers it (commands.py's own are always there).
MODULES = {
    "snapshot": "history",
    "history": "history",
    "cron": "history",
    "verify": "history",
    "export": "records",
    "import": "records",
    "backup": "records",
    "report": "report",
    "compare": "report",
    "margin": "margin",
    "add-margin": "margin",
    "remove-margin": "margin",
    "margin-mode": "margin",
    "size": "margin",
    "check": "margin",
    "allocation": "allocation",
    "rebalance": "allocation",
    "notify": "notify",
    "amend": "orders",
    "order": "orders",
    "orders": "orders",
    "cancel": "orders",
    "void": "orders",
}


def _app(command: str | None = None) -> typer.Typer:
    """The app with ``command`` registered; every command when it is None or unknown."""
    from portfolio_cli.cli.commands import CORE, app

    if command in MODULES:
        import_module(f"portfolio_cli.cli.{MODULES[command]}")
    elif command not in CORE:
        for module in sorted(set(MODULES.values())):
            import_module(f"portfolio_cli.cli.{module}")
    return app


def main() -> None:
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    _app(command)()


def __getattr__(name: str):
    if name == "app":  # the whole app, for tests and tools
        return _app()
    raise AttributeError(name)


__all__ = ["app", "main"]
