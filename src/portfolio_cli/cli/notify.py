"""Notification commands: notify."""

from __future__ import annotations

from typing import Annotated

import typer

from portfolio_cli.cli.commands import app
from portfolio_cli.cli.support import (
    ConfigOpt,
    DbOpt,
    JsonOpt,
    QuietOfflineOpt,
    command_line,
    print_json,
    running,
    stdout,
)
from portfolio_cli.errors import ExitCode


@app.command("notify")
def notify_(
    test: Annotated[bool, typer.Option("--test", help="Send a test message to every destination.")] = False,
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> ExitCode:
    """The notification destinations (their scheme only: the rest is secret), their events, and
    the messages waiting to be sent; --test sends each a test message and reports each result.

    Exit code 14 when a test message could not be sent. Example: [bold]portfolio notify --test[/]
    """
    from portfolio_cli.services.delivery import TestResult, destinations_overview, send_test

    with running(command_line(), db, config) as session:
        if not test:
            overview = destinations_overview(session)
            if json:
                print_json(overview)
                return ExitCode.OK
            if not overview.destinations:
                stdout.print("No notification destinations: add [notify] urls = [...] to the config")
            for d in overview.destinations:
                serves = "portfolio " + ", ".join(d.portfolios) if d.portfolios else "default"
                stdout.print(f"{d.destination}  {', '.join(d.events)}  ({serves})", markup=False, highlight=False)
            stdout.print(f"{overview.pending} message(s) waiting to be sent", markup=False, highlight=False)
            return ExitCode.OK
        results = send_test(session)
        if json:
            print_json(results, list[TestResult])
        else:
            for r in results:
                outcome = "sent" if r.sent else f"NOT sent: {r.error}"
                stdout.print(f"{r.destination}  {outcome}", markup=False, highlight=False, soft_wrap=True)
    return ExitCode.OK if all(r.sent for r in results) else ExitCode.NOT_NOTIFIED
