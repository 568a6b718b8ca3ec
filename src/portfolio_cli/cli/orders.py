"""Exit levels and pending orders: amend."""

from __future__ import annotations

from typing import Annotated

import typer

from portfolio_cli.cli.commands import app
from portfolio_cli.cli.support import (
    AtOpt,
    ConfigOpt,
    DbOpt,
    JsonOpt,
    OfflineOpt,
    PortfolioOpt,
    PricesOpt,
    amount,
    command_line,
    parse_at,
    portfolio_name,
    print_json,
    running,
    split_prices,
    stdout,
)

TradeArg = Annotated[int, typer.Argument(metavar="TRADE_ID", help="The open trade's id.", min=1)]


@app.command()
def amend(
    trade_id: TradeArg,
    stop_loss: Annotated[str | None, typer.Option(help="Set the stop-loss price.")] = None,
    no_stop_loss: Annotated[bool, typer.Option("--no-stop-loss", help="Remove the stop-loss.")] = False,
    take_profit: Annotated[str | None, typer.Option(help="Set the take-profit price.")] = None,
    no_take_profit: Annotated[bool, typer.Option("--no-take-profit", help="Remove the take-profit.")] = False,
    trailing_stop: Annotated[
        str | None,
        typer.Option(metavar="PCT", help="Trail the stop PCT % behind the best price from now on."),
    ] = None,
    no_trailing_stop: Annotated[bool, typer.Option("--no-trailing-stop", help="Remove the trailing stop.")] = False,
    at: AtOpt = None,
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Change an open trade's stop-loss, take-profit or trailing stop, in force from now (or --at).

    Levels are checked against the price at that moment, as at open. The amendment is a record: check
    replays each candle with the levels in force at it.
    Examples: [bold]portfolio amend 7 --stop-loss 61000[/] · [bold]portfolio amend 7 --no-take-profit
    --trailing-stop 2.5[/]
    """
    from portfolio_cli.services.amend import AmendRequest, AmendResult, amend_trade

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        request = AmendRequest(
            trade_id=trade_id,
            stop_loss=amount(stop_loss, "--stop-loss"),
            take_profit=amount(take_profit, "--take-profit"),
            trailing_pct=amount(trailing_stop, "--trailing-stop"),
            remove_stop_loss=no_stop_loss,
            remove_take_profit=no_take_profit,
            remove_trailing=no_trailing_stop,
            at=parse_at(at),
            note=note,
        )
        result = amend_trade(session, portfolio_name(session, portfolio), request)
        if json:
            return print_json(result, AmendResult)
        from portfolio_cli.render.orders import amend_view

        stdout.print(amend_view(result))
