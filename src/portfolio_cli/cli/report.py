"""Report commands: report (and its HTML file)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

from portfolio_cli.cli.commands import app
from portfolio_cli.cli.support import (
    ConfigOpt,
    DbOpt,
    JsonOpt,
    OfflineOpt,
    PortfolioOpt,
    command_line,
    parse_day,
    portfolio_name,
    print_json,
    running,
    stderr,
    stdout,
    write_file,
)
from portfolio_cli.errors import InvalidInput

SinceOpt = Annotated[str | None, typer.Option("--from", help="First day (UTC date): returns start from its snapshot.")]
UntilOpt = Annotated[str | None, typer.Option("--to", help="Last day (UTC date), included.")]
PeriodOpt = Annotated[str | None, typer.Option(help="7d, 30d, 90d, ytd, 1y or all (default all).")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV rows (section, name, value, note) instead of tables.")]


@app.command()
def report(
    since: SinceOpt = None,
    until: UntilOpt = None,
    period: PeriodOpt = None,
    html: Annotated[Path | None, typer.Option(help="Also write a self-contained HTML report to FILE.")] = None,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Performance over daily snapshots: returns, risk, drawdowns, trades, attribution, a BTC benchmark.

    Examples: [bold]portfolio report[/] · [bold]portfolio report --period 30d[/] ·
    [bold]portfolio report --from 2026-01-01 --to 2026-06-30 --json[/] · [bold]portfolio report --html report.html[/]
    """
    from portfolio_cli.render.report import report_json, report_rows
    from portfolio_cli.services.report import report as report_of

    with running(command_line(), db, config, offline) as session:
        if json and as_csv:
            raise InvalidInput("give either --json or --csv, not both")
        result = report_of(
            session, portfolio_name(session, portfolio), parse_day(since, "--from"), parse_day(until, "--to"), period
        )
        if html is not None:
            from portfolio_cli.render.html import report_html

            write_file(html, lambda handle: handle.write(report_html(result)))
        if json:
            print_json(report_json(result))
        elif as_csv:
            csv.writer(sys.stdout, lineterminator="\n").writerows(report_rows(result))
        else:
            from portfolio_cli.render.report import report_view

            stdout.print(report_view(result, stdout.width))
        for note in result.notes:
            stderr.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
        if html is not None:
            stderr.print(f"Wrote the HTML report to {html}", highlight=False, soft_wrap=True)
