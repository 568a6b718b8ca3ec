"""Report commands: report (and its HTML file) and compare."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from portfolio_cli.choices import CompareBy, ReportPeriod
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
    warn_note,
    write_file,
)
from portfolio_cli.errors import InvalidInput

SinceOpt = Annotated[str | None, typer.Option("--from", help="First day (UTC date): returns start from its snapshot.")]
UntilOpt = Annotated[str | None, typer.Option("--to", help="Last day (UTC date), included.")]
PeriodOpt = Annotated[ReportPeriod | None, typer.Option(help="The window ending at the last day (default all).")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV rows (section, name, value, note) instead of tables.")]


def emit(result: Any, json: bool, as_csv: bool, to_json: Callable, to_rows: Callable, to_view: Callable) -> None:
    """Print ``result`` as JSON, CSV rows or rich tables; its notes go to stderr."""
    if json:
        print_json(to_json(result))
    elif as_csv:
        from portfolio_cli.export import write_rows

        write_rows(to_rows(result), sys.stdout)
    else:
        stdout.print(to_view(result, stdout.width))
    for note in result.notes:
        warn_note(note)


@app.command()
def report(
    since: SinceOpt = None,
    until: UntilOpt = None,
    period: PeriodOpt = None,
    html: Annotated[Path | None, typer.Option(help="Also write a self-contained HTML report to FILE.")] = None,
    pdf: Annotated[Path | None, typer.Option(help="Also write the report as a paginated PDF to FILE.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the HTML or PDF file if it exists.")] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Performance over daily snapshots: returns, risk, drawdowns, trades, attribution, a BTC benchmark.

    Examples: [bold]portfolio report[/] · [bold]portfolio report --period 30d[/] ·
    [bold]portfolio report --from 2026-01-01 --to 2026-06-30 --json[/] · [bold]portfolio report --html report.html[/] ·
    [bold]portfolio report --pdf report.pdf[/]
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

            def write_page(handle: TextIO) -> None:
                handle.write(report_html(result))

            write_file(html, write_page, force)
        if pdf is not None:
            from portfolio_cli.files import write_bytes
            from portfolio_cli.render.pdf import report_pdf

            write_bytes(pdf, report_pdf(result), force)
        from portfolio_cli.render.report import report_view

        emit(result, json, as_csv, report_json, report_rows, report_view)
        if html is not None:
            stderr.print(f"Wrote the HTML report to {html}", highlight=False, soft_wrap=True, markup=False)
        if pdf is not None:
            stderr.print(f"Wrote the PDF report to {pdf}", highlight=False, soft_wrap=True, markup=False)


@app.command()
def compare(
    portfolios: Annotated[
        list[str] | None, typer.Argument(metavar="[PORTFOLIO]...", help="Two or more portfolios.")
    ] = None,
    by: Annotated[
        CompareBy | None, typer.Option(help="strategy: compare the strategy tags inside one portfolio (-p).")
    ] = None,
    benchmark: Annotated[
        bool, typer.Option("--benchmark", help="Add BTC buy-and-hold with the first one's cash flows.")
    ] = False,
    since: SinceOpt = None,
    until: UntilOpt = None,
    period: PeriodOpt = None,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Portfolios (or one portfolio's strategies) side by side over the same dates, best of each row highlighted.

    Examples: [bold]portfolio compare momentum dca --period 90d[/] ·
    [bold]portfolio compare --by strategy -p main[/] · [bold]portfolio compare a b --benchmark --json[/]
    """
    from portfolio_cli.render.compare import compare_json, compare_rows
    from portfolio_cli.services.compare import compare_portfolios, compare_strategies

    with running(command_line(), db, config, offline) as session:
        if json and as_csv:
            raise InvalidInput("give either --json or --csv, not both")
        first, last = parse_day(since, "--from"), parse_day(until, "--to")
        if by is None:
            result = compare_portfolios(session, portfolios or [], first, last, period, benchmark)
        else:  # --by strategy
            if portfolios:
                raise InvalidInput("--by strategy compares inside one portfolio: give it with -p, not as arguments")
            if benchmark:
                raise InvalidInput("--benchmark compares portfolios, not strategies")
            result = compare_strategies(session, portfolio_name(session, portfolio), first, last, period)
        from portfolio_cli.render.compare import compare_view

        emit(result, json, as_csv, compare_json, compare_rows, compare_view)
