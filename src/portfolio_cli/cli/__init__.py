"""The ``portfolio`` command line: parse, call one service function, render or print JSON.

The core commands live in ``commands``; the others in modules loaded only when their command runs
(or for ``--help``), so that a quick command does not pay for building thirty others at startup.
Typer builds a Click command from every registered function's signature each time the app runs
(about 3 ms a command), so ``main`` hands it only what this run can use: the one command named on
the line, or, when none is (``portfolio``, ``portfolio --help``, a mistyped name), every command's
name and help without their options.
"""

from __future__ import annotations

import copy
import gc
import inspect
import os
import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

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
    for info in app.registered_commands:
        if info.help is None:
            info.help = reflowed(inspect.getdoc(info.callback) or "")
    return app


def reflowed(doc: str) -> str:
    """A docstring as a command's help: each paragraph's lines joined, so that the terminal wraps it
    at its own width (Typer's rich mode keeps every line break of the source, which cut sentences in
    two at 80 columns); an example line still starts a line of its own."""
    paragraphs = []
    for paragraph in doc.split("\n\n"):
        first, *rest = paragraph.split("\n")
        text = first
        for line in rest:
            text += ("\n" if line.startswith("Example") else " ") + line.strip()
        paragraphs.append(text)
    return "\n\n".join(paragraphs)


def _name(info: Any) -> str:
    return str(info.name or info.callback.__name__).replace("_", "-")


def _only(app: typer.Typer, command: str) -> typer.Typer:
    """``app`` with ``command`` its only command (the root options and callback unchanged)."""
    narrowed = copy.copy(app)
    narrowed.registered_commands = [c for c in app.registered_commands if _name(c) == command]
    return narrowed


def _listed_only(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("a command built for the help listing was run")


def _listing(app: typer.Typer) -> typer.Typer:
    """``app`` with each command as its name and help only: what the root's help and its
    "No such command" hint show. No command can run from it, since none was named."""
    listed = copy.copy(app)
    listed.registered_commands = []
    for info in app.registered_commands:
        entry = copy.copy(info)
        entry.name = _name(info)
        entry.help = inspect.getdoc(info.callback) if info.help is None else info.help
        entry.callback = _listed_only
        listed.registered_commands.append(entry)
    return listed


def main() -> None:
    # Start-up (the imports, the app, its options, the session) allocates some 200,000 objects and
    # frees almost none, so the collector's passes over them are ~15 ms of work for nothing;
    # ``support.running`` turns it back on once the command's own work begins.
    gc.disable()
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    app = _app(command)
    if command is None or "--help" in sys.argv:
        from portfolio_cli.cli.help import load_help_renderer

        load_help_renderer()
    try:
        if any(n.startswith("_") and n.endswith("_COMPLETE") for n in os.environ):  # completion: every option
            app()
        elif command in MODULES or command in _core():
            _only(app, command)()
        else:
            _listing(app)()
    finally:
        # The command is over (its writes committed or rolled back, the ledger closed) and the process
        # ends next: the interpreter's last full collections over every object of Typer, pydantic and
        # rich cost ~50 ms, a sixth of a quick command, and free nothing the exit would not.
        gc.freeze()


def _core() -> frozenset[str]:
    from portfolio_cli.cli.commands import CORE

    return CORE


def __getattr__(name: str):
    if name == "app":  # the whole app, for tests and tools
        return _app()
    raise AttributeError(name)


__all__ = ["app", "main"]
