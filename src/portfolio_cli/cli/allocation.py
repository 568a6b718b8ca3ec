"""Allocation commands: allocation and rebalance."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from portfolio_cli.cli.commands import app
from portfolio_cli.cli.support import (
    ConfigOpt,
    DbOpt,
    JsonOpt,
    OfflineOpt,
    PortfolioOpt,
    PricesOpt,
    command_line,
    notified,
    portfolio_name,
    print_json,
    running,
    split_prices,
    stdout,
    warn_note,
)
from portfolio_cli.errors import ExitCode, InvalidInput, PortfolioError


@app.command()
def allocation(
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Where the equity sits: by asset, class and sector, exposure, concentration, correlated groups, targets.

    Example: [bold]portfolio allocation[/]
    """
    from portfolio_cli.render.allocation import allocation_json, allocation_view
    from portfolio_cli.services.allocation import allocation as allocation_of

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        result = allocation_of(session, portfolio_name(session, portfolio))
        if json:
            print_json(allocation_json(result))
        else:
            stdout.print(allocation_view(result))
        for note in result.notes:
            warn_note(note)


@app.command()
def rebalance(
    execute: Annotated[bool, typer.Option("--execute", help="Book the plan (asks first unless --yes).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --execute: do not ask.")] = False,
    force: Annotated[bool, typer.Option(help="Execute even within the minimum interval.")] = False,
    if_due: Annotated[
        bool, typer.Option("--if-due", help="With --execute: only when the strategy says so (for cron).")
    ] = False,
    log: Annotated[bool, typer.Option("--log", help="List the past rebalances instead.")] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> ExitCode:
    """Plan the trades back to the targets in the config, fee- and exchange-aware; --execute books them.

    All of the plan or none of it is booked, in one transaction, with a rebalance record. With
    --if-due and [notify] configured, what was executed (or why not) is sent; exit 14 if it could not be.
    Examples: [bold]portfolio rebalance[/] · [bold]portfolio rebalance --execute[/] ·
    cron: [bold]portfolio rebalance --execute --yes --if-due[/] · [bold]portfolio rebalance --log[/]
    """
    from portfolio_cli.render.allocation import log_json, log_view, plan_json, plan_view
    from portfolio_cli.services.notify import after_rebalance
    from portfolio_cli.services.rebalance import Rebalance, rebalance_log, run

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        name = portfolio_name(session, portfolio)
        if log:
            events = rebalance_log(session, name)
            if json:
                print_json(log_json(events))
            else:
                stdout.print(log_view(name, events))
            return ExitCode.OK
        if (yes or if_due) and not execute:
            raise InvalidInput("--yes and --if-due go with --execute")

        shown = []

        def confirm(planned: Rebalance) -> bool:
            if yes:
                return True
            if json or not sys.stdin.isatty():
                raise InvalidInput("--execute without a terminal to confirm on needs --yes")
            stdout.print(plan_view(planned))
            shown.append(planned)
            return typer.confirm(f"Book these {len(planned.plan.trades)} trade(s)?", default=False)

        try:
            result = run(session, name, execute, force, if_due, confirm)
        except PortfolioError as exc:
            if if_due:  # cron: say why it was not executed where the trader is, then fail as usual
                notified(after_rebalance(session, name, None, str(exc)))
            raise
        if json:
            print_json(plan_json(result))
        elif if_due and not result.due:
            stdout.print(f"no rebalancing needed: {result.why}", highlight=False, soft_wrap=True, markup=False)
        elif shown and result.executed is not None:
            stdout.print(f"Booked as rebalance {result.executed}: {len(result.plan.trades)} trade(s)")
        else:
            stdout.print(plan_view(result))
        sent = notified(after_rebalance(session, name, result)) if if_due else True
    return ExitCode.OK if sent else ExitCode.NOT_NOTIFIED
