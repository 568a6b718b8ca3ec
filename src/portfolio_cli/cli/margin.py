"""Margin and risk commands: margin, add-margin, remove-margin, margin-mode, size, check."""

from __future__ import annotations

from typing import Annotated

import typer

from portfolio_cli.choices import MarginMode
from portfolio_cli.cli.commands import app
from portfolio_cli.cli.support import (
    ConfigOpt,
    DbOpt,
    JsonOpt,
    OfflineOpt,
    PortfolioOpt,
    PricesOpt,
    amount,
    command_line,
    notified,
    portfolio_name,
    print_json,
    progress_bar,
    running,
    split_prices,
    stdout,
)
from portfolio_cli.errors import ExitCode, InvalidInput
from portfolio_cli.money import parse_positive

TradeArg = Annotated[int, typer.Argument(metavar="TRADE_ID", help="The margin trade's id.", min=1)]


@app.command()
def margin(
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Margin, liquidation prices, margin level and a BTC stress table.

    Per margin position: margin, maintenance margin, liquidation price and the distance to it.
    For the account: margin level and its state. Stress: BTC ±10/20/30 %, others by beta.
    States: ok · warning below 200 % · liquidation risk below 150 % · critical below 110 %.
    Example: [bold]portfolio margin[/]
    """
    from portfolio_cli.render.margin import margin_view
    from portfolio_cli.services.margin import MarginReport, margin_report

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        report = margin_report(session, portfolio_name(session, portfolio))
        if json:
            return print_json(report, MarginReport)
        stdout.print(margin_view(report, ticks=session.prices.ticks()))


def _change_margin(trade_id: int, value: str, sign: int, portfolio, offline, prices, db, config, json) -> None:
    from portfolio_cli.render.margin import margin_update_view
    from portfolio_cli.services.margin import change_isolated_margin

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        change = parse_positive(value, "amount") * sign
        update = change_isolated_margin(session, portfolio_name(session, portfolio), trade_id, change)
        if json:
            return print_json(update)
        stdout.print(margin_update_view(update, session.prices.ticks()))


@app.command("add-margin")
def add_margin(
    trade_id: TradeArg,
    value: Annotated[str, typer.Argument(metavar="AMOUNT", help="USDT to move from free margin.")],
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add margin to an isolated position, moving its liquidation price away.

    Example: [bold]portfolio add-margin 3 250[/]
    """
    _change_margin(trade_id, value, 1, portfolio, offline, prices, db, config, json)


@app.command("remove-margin")
def remove_margin(
    trade_id: TradeArg,
    value: Annotated[str, typer.Argument(metavar="AMOUNT", help="USDT to return to free margin.")],
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Take back margin added to an isolated position (its initial margin stays).

    Example: [bold]portfolio remove-margin 3 100[/]
    """
    _change_margin(trade_id, value, -1, portfolio, offline, prices, db, config, json)


@app.command("margin-mode")
def margin_mode(
    trade_id: TradeArg,
    isolated: Annotated[
        bool | None, typer.Option("--isolated/--cross", help="The mode to move the position to.")
    ] = None,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Move a margin position between isolated and cross margin.

    Moving to cross releases any margin added to it. Example: [bold]portfolio margin-mode 3 --cross[/]
    """
    from portfolio_cli.render.margin import margin_update_view
    from portfolio_cli.services.margin import switch_margin_mode

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        if isolated is None:
            raise InvalidInput(
                f"say which margin mode to move trade {trade_id} to: "
                f"portfolio margin-mode {trade_id} --isolated, or --cross"
            )
        mode = MarginMode.ISOLATED if isolated else MarginMode.CROSS
        update = switch_margin_mode(session, portfolio_name(session, portfolio), trade_id, mode)
        if json:
            return print_json(update)
        stdout.print(margin_update_view(update, session.prices.ticks()))


@app.command()
def size(
    symbol: Annotated[str, typer.Argument(help="Unified symbol, e.g. BTC/USDT.")],
    stop: Annotated[str, typer.Option(help="Stop-loss price.")],
    entry: Annotated[str | None, typer.Option(help="Entry price (default: the current price).")] = None,
    risk: Annotated[str | None, typer.Option(help="% of equity to risk (default: risk.risk_per_trade_pct).")] = None,
    leverage: Annotated[int, typer.Option(help="1-125; above 1 sizes a margin position.")] = 1,
    short: Annotated[bool, typer.Option("--short", help="Size a short (a margin position).")] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Position size from the risk you take to the stop.

    equity × risk % ÷ |entry − stop|, capped by free margin (5 % buffer), the cash reserve and the
    allocation and total-risk limits; it says which cap bound the result.

    Example: [bold]portfolio size BTC/USDT --entry 64000 --stop 61000 --risk 1 --leverage 3[/]
    """
    from portfolio_cli.render.margin import size_view
    from portfolio_cli.services.margin import size_position

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        result = size_position(
            session,
            portfolio_name(session, portfolio),
            symbol,
            amount(stop, "--stop"),
            entry=amount(entry, "--entry"),
            risk_pct=amount(risk, "--risk"),
            leverage=leverage,
            short=short,
        )
        if json:
            return print_json(result)
        stdout.print(size_view(result, session.prices.ticks()))


@app.command()
def check(
    portfolio: Annotated[
        list[str] | None, typer.Option("--portfolio", "-p", help="Only this portfolio, repeatable (default: all).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only events (for cron mail).")] = False,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> ExitCode:
    """Book stops, liquidations and funding since the last check (for cron).

    Stop-losses, take-profits, isolated liquidations, cross margin calls and funding are booked at
    the time and price they happened, from 1-minute or hourly candles.

    Exit codes: 0 nothing to report · 10 margin level below 200 % · 11 below 150 % ·
    12 a position was closed · 13 booked, but candles were missing for a window (named on stderr) ·
    14 booked, but a notification could not be sent.
    Example (crontab): [bold]*/5 * * * * portfolio check --quiet[/]
    """
    from portfolio_cli.render.margin import check_view, gap_lines
    from portfolio_cli.services.check import CheckResult, run_check
    from portfolio_cli.services.notify import after_check

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        with progress_bar() as progress:
            result = run_check(session, portfolio or None, progress)
        if not result.portfolios and not json:
            stdout.print("No portfolios to check yet: portfolio init NAME")
            return ExitCode.OK
        if json:
            print_json(result, CheckResult)
        else:
            view = check_view(result, quiet)
            if view is not None:
                stdout.print(view)
        for line in gap_lines(result):  # named on stderr as incomplete: exit 13
            session.left_out(line)
        sent = notified(after_check(session, result))
    return result.outcome if sent else ExitCode.NOT_NOTIFIED
