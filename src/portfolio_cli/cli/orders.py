"""Exit levels, pending orders and corrections: amend, order, orders, cancel, void."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
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


_DURATION = re.compile(r"(\d{1,6})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _expires(text: str | None) -> datetime | timedelta | None:
    """``24h``, ``30m``, ``7d`` from now, or a UTC date or time."""
    if text is None:
        return None
    matched = _DURATION.fullmatch(text.strip())
    if matched:
        return timedelta(**{_UNITS[matched.group(2)]: int(matched.group(1))})
    return parse_at(text, "--expires")


@app.command()
def order(
    symbol: Annotated[str, typer.Argument(help="Unified symbol, e.g. BTC/USDT.")],
    limit: Annotated[str | None, typer.Option(help="A limit order at this price (maker).")] = None,
    stop_entry: Annotated[
        str | None, typer.Option(help="A stop-entry order triggered at this price (taker).")
    ] = None,
    qty: Annotated[str | None, typer.Option(help="Quantity of the base asset.")] = None,
    notional: Annotated[str | None, typer.Option(help="Size in USDT at the order's price instead of --qty.")] = None,
    short: Annotated[bool, typer.Option("--short", help="Sell short (a margin position).")] = False,
    leverage: Annotated[int, typer.Option(help="1-125; above 1 makes a margin position.")] = 1,
    margin_mode: Annotated[
        bool | None, typer.Option("--isolated/--cross", help="Margin mode (default: config, isolated).")
    ] = None,
    stop_loss: Annotated[str | None, typer.Option(help="Stop-loss price of the trade it fills.")] = None,
    take_profit: Annotated[str | None, typer.Option(help="Take-profit price of the trade it fills.")] = None,
    trailing_stop: Annotated[
        str | None, typer.Option(metavar="PCT", help="A trailing stop PCT % behind the best price since the fill.")
    ] = None,
    expires: Annotated[
        str | None, typer.Option(metavar="24h|DATE", help="Cancel it unfilled 30m, 24h, 7d after it is placed, or at a UTC time.")
    ] = None,
    at: AtOpt = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy tag.")] = None,
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
    off_market: Annotated[
        bool,
        typer.Option("--off-market", help="Take a --limit outside Binance's price band around the market (recorded)."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the reservation and what its fill would book; place nothing."),
    ] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Place a pending limit or stop-entry order; `check` fills it from the candles.

    The order reserves its margin (spot: its cost) out of free margin until it fills, is cancelled
    or expires. The risk rules run when it fills; an order they refuse is cancelled, saying why.
    Examples: [bold]portfolio order BTC/USDT --limit 58000 --qty 0.01 --expires 24h[/] ·
    [bold]portfolio order ETH/USDT --stop-entry 2500 --notional 1000 --leverage 3 --stop-loss 2400[/]
    """
    from portfolio_cli.engine.records import MarginMode
    from portfolio_cli.services.orders import OrderRequest, OrderRow, place_order

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        request = OrderRequest(
            symbol=symbol,
            limit=amount(limit, "--limit"),
            stop_entry=amount(stop_entry, "--stop-entry"),
            qty=amount(qty, "--qty"),
            notional=amount(notional, "--notional"),
            short=short,
            leverage=leverage,
            margin_mode=None if margin_mode is None else MarginMode.ISOLATED if margin_mode else MarginMode.CROSS,
            stop_loss=amount(stop_loss, "--stop-loss"),
            take_profit=amount(take_profit, "--take-profit"),
            trailing_pct=amount(trailing_stop, "--trailing-stop"),
            strategy=strategy,
            note=note,
            expires=_expires(expires),
            at=parse_at(at),
            off_market=off_market,
        )
        if dry_run:
            return _preview(session, portfolio_name(session, portfolio), request, json)
        placed = place_order(session, portfolio_name(session, portfolio), request)
        if json:
            return print_json(placed, OrderRow)
        from portfolio_cli.render.orders import order_line

        stdout.print(order_line("Placed", placed))


def _preview(session, name: str, request, json: bool) -> None:
    from portfolio_cli.errors import RuleRefused
    from portfolio_cli.render.orders import order_what_if_view
    from portfolio_cli.services.orders import preview_order

    what_if = preview_order(session, name, request)
    if json:
        print_json(what_if)
    else:
        stdout.print(order_what_if_view(what_if))
    if not what_if.would_place:
        raise RuleRefused("dry run: refused by free margin; nothing was placed")
    if not what_if.at_fill.would_book:
        refused = ", ".join(what_if.at_fill.refused_by)
        raise RuleRefused(f"dry run: its fill would be cancelled by {refused} as things stand; nothing was placed")


@app.command()
def orders(
    every: Annotated[bool, typer.Option("--all", help="Every order, filled, cancelled and expired too.")] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Pending orders (with --all, every order and how it ended).

    Example: [bold]portfolio orders --all[/]
    """
    from portfolio_cli.services.orders import OrderRow, list_orders

    with running(command_line(), db, config, offline) as session:
        rows = list_orders(session, portfolio_name(session, portfolio), every)
        if json:
            return print_json(rows, list[OrderRow])
        from portfolio_cli.render.orders import orders_table

        stdout.print(orders_table(rows) if rows else "No orders" if every else "No open orders")


@app.command()
def cancel(
    order_id: Annotated[int, typer.Argument(metavar="ORDER_ID", help="The open order's id.", min=1)],
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Cancel an open order, releasing what it reserved.

    Example: [bold]portfolio cancel 3[/]
    """
    from portfolio_cli.services.orders import OrderRow, cancel_order

    with running(command_line(), db, config, offline) as session:
        cancelled = cancel_order(session, portfolio_name(session, portfolio), order_id)
        if json:
            return print_json(cancelled, OrderRow)
        from portfolio_cli.render.orders import order_line

        stdout.print(order_line("Cancelled", cancelled))


@app.command()
def void(
    record: Annotated[
        str,
        typer.Argument(
            metavar="RECORD",
            help="A trade id, or KIND:ID with KIND one of trade, close, deposit, withdrawal, margin, amendment.",
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why the record is voided (kept with the void).")] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be undone and rebuilt; book nothing.")
    ] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Reverse a mistaken record as if it never happened, while no later record depends on it.

    The void is a record of its own (listed by trades --voided); the snapshots from the voided
    record's day are rebuilt and the next check replays from its moment.
    Examples: [bold]portfolio void 7 --reason "price typo"[/] ·
    [bold]portfolio void close:12 --reason "closed the wrong trade"[/]
    """
    from portfolio_cli.services.voids import VoidResult, void_record

    with running(command_line(), db, config, offline) as session:
        result = void_record(session, portfolio_name(session, portfolio), record, reason, dry_run)
        if json:
            return print_json(result, VoidResult)
        from portfolio_cli.render.orders import void_view

        stdout.print(void_view(result))
