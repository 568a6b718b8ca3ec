"""Record commands: export, import, backup."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from portfolio_cli.choices import ExportKind, FileFormat, Method
from portfolio_cli.cli.commands import app
from portfolio_cli.cli.support import (
    ConfigOpt,
    DbOpt,
    JsonOpt,
    OfflineOpt,
    PortfolioOpt,
    PricesOpt,
    QuietOfflineOpt,
    command_line,
    parse_at,
    portfolio_name,
    print_json,
    progress_bar,
    running,
    split_prices,
    stdout,
    write_file,
)


@app.command()
def export(
    kind: Annotated[ExportKind, typer.Argument(metavar="KIND", help="What to export.")],
    file_format: Annotated[FileFormat, typer.Option("--format", help="The file format.")] = FileFormat.CSV,
    since: Annotated[str | None, typer.Option("--from", help="From this UTC date or time (included).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Up to this UTC date or time (excluded).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="positions: as they stood at this moment.")] = None,
    year: Annotated[int | None, typer.Option(help="tax: the calendar year (UTC).")] = None,
    method: Annotated[Method, typer.Option(help="tax: the lot matching.")] = Method.FIFO,
    currency: Annotated[
        str, typer.Option(help="tax: also value every row in this currency (EUR, GBP, USD…) at each day's rate.")
    ] = "USDT",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists (a regular file only).")] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Export records as CSV or JSON: stable columns, exact decimals as text, UTC times.

    Examples: [bold]portfolio export trades --format json -o trades.json[/] ·
    [bold]portfolio export tax --year 2026 --method hifo --currency EUR -o tax-2026.csv[/]
    """
    from portfolio_cli.export import write_csv, write_json
    from portfolio_cli.services.exports import export as export_records

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        name = portfolio_name(session, portfolio)
        result = export_records(
            session,
            kind,
            name,
            parse_at(since, "--from"),
            parse_at(until, "--to"),
            parse_at(at),
            year,
            method,
            file_format is FileFormat.JSON,
            currency,
        )
        write = write_csv if file_format is FileFormat.CSV else partial(write_json, meta=result.meta)
        if output is None:
            write(result.table, out=sys.stdout)
        else:
            write_file(output, lambda handle: write(result.table, out=handle), force)
            count = result.table.size
            print(f"Wrote {count} {kind} record(s) of {name} to {output}", file=sys.stderr)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A trades export of this tool, CSV or JSON.", dir_okay=False)],
    portfolio: PortfolioOpt = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check the symbols against the cached markets list only.")
    ] = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
    allow_unknown: Annotated[
        bool, typer.Option("--allow-unknown", help="Take symbols the markets list does not know (offline restore).")
    ] = False,
) -> None:
    """Import trades exported by `portfolio export trades`, all or nothing; already-present ones are skipped.

    Example: [bold]portfolio init copy && portfolio import trades.csv -p copy[/]
    """
    from portfolio_cli.services.importing import ImportResult, import_trades

    with running(command_line(), db, config, offline, creates_ledger=True) as session:  # a restore into a new file
        with progress_bar() as progress:
            result = import_trades(session, file, portfolio_name(session, portfolio), progress, allow_unknown)
        if json:
            return print_json(result, ImportResult)
        stdout.print(
            f"Imported into {result.portfolio}: {result.trades_added} trade(s) and {result.closes_added} close(s); "
            f"already present and skipped: {result.trades_present} trade(s), {result.closes_present} close(s)",
            highlight=False,
        )


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the copy (must not exist).", dir_okay=False)],
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Copy the ledger consistently, even while cron or another command writes to it.

    Example: [bold]portfolio backup ~/backups/ledger-2026-12-31.db[/]
    """
    with running(command_line(), db, config) as session:
        integrity = session.ledger.backup(file)
        stdout.print(
            f"Backed up {session.paths.ledger} to {file} (integrity check: {integrity})", highlight=False, markup=False
        )
