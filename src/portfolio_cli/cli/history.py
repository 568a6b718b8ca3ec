"""History commands: snapshot, history, cron, verify."""

from __future__ import annotations

from typing import Annotated

import typer

from portfolio_cli.choices import Every
from portfolio_cli.cli.commands import app
from portfolio_cli.cli.support import (
    ConfigOpt,
    DbOpt,
    JsonOpt,
    OfflineOpt,
    PortfolioOpt,
    QuietOfflineOpt,
    command_line,
    notified,
    parse_day,
    portfolio_name,
    print_json,
    progress_bar,
    running,
    stdout,
    warn,
)
from portfolio_cli.errors import ExitCode


@app.command()
def snapshot(
    all_portfolios: Annotated[bool, typer.Option("--all", help="Every portfolio in the ledger.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only days that could not be taken.")] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> ExitCode:
    """Take today's (UTC) snapshot, first backfilling every missed day from daily candles.

    One snapshot per portfolio and day: running again the same day replaces it. A day that cannot
    be priced (offline, no candle) is listed on stderr and left for a later run, never invented.

    Exit codes: 0 all taken · 13 some day not taken (committed, named on stderr) · 14 taken, but a
    notification could not be sent. Example (crontab):
    [bold]5 0 * * * portfolio snapshot --all --quiet[/]
    """
    from portfolio_cli.render.history import skipped_lines, snapshot_view
    from portfolio_cli.services.notify import after_snapshot
    from portfolio_cli.services.snapshots import SnapshotRun, take_snapshots

    with running(command_line(), db, config, offline) as session:
        names = None if all_portfolios else [portfolio_name(session, portfolio)]
        with progress_bar() as progress:
            run = take_snapshots(session, names, progress)
        if json:
            print_json(run, SnapshotRun)
        elif not run.portfolios:
            stdout.print("No portfolios to snapshot yet: portfolio init NAME")
        elif not quiet:
            stdout.print(snapshot_view(run))
        for line in skipped_lines(run):
            warn(line)
        sent = notified(after_snapshot(session, run))
    if not sent:
        return ExitCode.NOT_NOTIFIED
    return ExitCode.OK if run.complete else ExitCode.INCOMPLETE


@app.command()
def history(
    since: Annotated[str | None, typer.Option("--from", help="First day (UTC date).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Last day (UTC date), included.")] = None,
    every: Annotated[
        Every | None, typer.Option(help="One row per period (default: by the range, a screenful of rows).")
    ] = None,
    portfolio: PortfolioOpt = None,
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Daily snapshots as a table by day, week, month, quarter or year, with equity and drawdown charts.

    Examples: [bold]portfolio history[/] · [bold]portfolio history --from 2026-01-01 --every week[/]
    """
    from portfolio_cli.services.history import History
    from portfolio_cli.services.history import history as history_of

    with running(command_line(), db, config) as session:
        result = history_of(
            session, portfolio_name(session, portfolio), parse_day(since, "--from"), parse_day(until, "--to"), every
        )
        if json:
            return print_json(result, History)
        from portfolio_cli.render.history import history_view

        stdout.print(history_view(result, stdout.width))


@app.command()
def cron(
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print crontab lines, with absolute paths, for the daily snapshot and the stop/margin check.

    Example: [bold]portfolio cron >> my-crontab[/]
    """
    from portfolio_cli.services.cron import cron_lines

    with running(command_line(), db, config) as session:
        for line in cron_lines(session):
            print(line)


@app.command()
def verify(
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> ExitCode:
    """Rebuild every derived figure and stored snapshot from the ledger's records and compare.

    Also runs SQLite's integrity check. Exit code 6 when anything differs.
    Example: [bold]portfolio verify[/]
    """
    from portfolio_cli.render.history import verify_view
    from portfolio_cli.services.verify import VerifyReport
    from portfolio_cli.services.verify import verify as verify_ledger

    with running(command_line(), db, config) as session:
        report = verify_ledger(session)
        if json:
            print_json(report, VerifyReport)
        else:
            stdout.print(verify_view(report))
    return ExitCode.OK if report.ok else ExitCode.LEDGER
