"""Every ``portfolio`` command. Each parses its options, calls one service function and renders."""

from __future__ import annotations

from typing import Annotated

import typer

from portfolio_cli import __version__, services
from portfolio_cli.choices import Kind, MarginMode, Side, TradeStatus
from portfolio_cli.cli.exits import ExitCodes
from portfolio_cli.cli.support import (
    AsOfOpt,
    AtOpt,
    ConfigOpt,
    DbOpt,
    JsonOpt,
    OfflineOpt,
    PortfolioOpt,
    PricesOpt,
    QuietOfflineOpt,
    amount,
    command_line,
    parse_at,
    portfolio_name,
    print_json,
    running,
    split_prices,
    stdout,
)
from portfolio_cli.errors import ExitCode, InvalidInput, RuleRefused

app = typer.Typer(
    cls=ExitCodes,
    name="portfolio",
    help="Paper-trade crypto on real Binance prices, from an exact local ledger.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
)


def _version(flag: bool) -> None:
    if flag:
        print(f"portfolio-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Paper-trade crypto on real Binance prices, from an exact local ledger.

    Exit codes: 0 ok, 1 refused by a rule, 2 usage, 3 config, 4 not found, 5 price unavailable, 6 ledger,
    10-12 check's margin warning, alert and closes, 13 committed but incomplete, 70 a bug.
    """


@app.command()
def init(
    name: Annotated[str | None, typer.Argument(help="Portfolio name (default: the default portfolio).")] = None,
    balance: Annotated[str, typer.Option(help="Starting balance in USDT (100 to 1,000,000).")] = "10000",
    at: AtOpt = None,
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a paper portfolio with a starting USDT balance.

    Example: [bold]portfolio init momentum --balance 25000[/]
    """
    from portfolio_cli import render

    with running(command_line(), db, config, creates_ledger=True) as session:
        result = services.init_portfolio(
            session, name or session.settings.default_portfolio, amount(balance, "--balance"), parse_at(at)
        )
        if json:
            return print_json(result)
        if result.moved_back:
            return stdout.print(
                f"Portfolio {result.name} (and its starting balance) now dated {render.moment(result.created_at)}"
            )
        stdout.print(f"Created portfolio {result.name} with {render.money(result.wallet_balance)} USDT")


@app.command()
def portfolios(
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the portfolios in the ledger.

    Example: [bold]portfolio portfolios[/]
    """
    from portfolio_cli import render

    with running(command_line(), db, config) as session:
        rows = services.list_portfolios(session)
        if json:
            return print_json(rows, list[services.PortfolioSummary])
        stdout.print(render.portfolios_table(rows) if rows else "No portfolios yet: portfolio init NAME")


def _cash(
    kind: str,
    value: str,
    portfolio: str | None,
    at: str | None,
    note: str | None,
    db,
    config,
    offline,
    prices,
    json: bool,
    force: bool = False,
) -> None:
    from portfolio_cli import render

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        name, moved = portfolio_name(session, portfolio), amount(value, "amount")
        if kind == "deposit":
            result = services.deposit(session, name, moved, parse_at(at), note)
        else:
            result = services.withdraw(session, name, moved, parse_at(at), note, force)
        if json:
            return print_json(result)
        stdout.print(
            f"{kind.capitalize()} {result.id} of {render.money(result.amount)} USDT recorded in {result.portfolio}: "
            "wallet "
            f"{render.money(result.wallet_balance)} USDT, free margin {render.money(result.free_margin)} USDT"
        )


@app.command()
def deposit(
    value: Annotated[str, typer.Argument(metavar="AMOUNT", help="USDT to add.")],
    portfolio: PortfolioOpt = None,
    at: AtOpt = None,
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Add USDT to a portfolio (not counted as a return).

    Example: [bold]portfolio deposit 500 -p momentum[/]
    """
    _cash("deposit", value, portfolio, at, note, db, config, offline, None, json)


@app.command()
def withdraw(
    value: Annotated[str, typer.Argument(metavar="AMOUNT", help="USDT to take out.")],
    portfolio: PortfolioOpt = None,
    at: AtOpt = None,
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Override risk.min_margin_level_pct (recorded); never solvency.")
    ] = False,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Take USDT out of a portfolio; refused beyond the free margin or below the margin-call line.

    Below risk.min_margin_level_pct it is refused too, unless --force (warned and recorded).
    Example: [bold]portfolio withdraw 250[/]
    """
    _cash("withdrawal", value, portfolio, at, note, db, config, offline, prices, json, force)


@app.command("open")
def open_(
    symbol: Annotated[str, typer.Argument(help="Unified symbol, e.g. BTC/USDT or ETH/BTC.")],
    qty: Annotated[str | None, typer.Option(help="Quantity of the base asset.")] = None,
    notional: Annotated[str | None, typer.Option(help="Size in USDT instead of --qty.")] = None,
    short: Annotated[bool, typer.Option("--short", help="Sell short (a margin position).")] = False,
    leverage: Annotated[int, typer.Option(help="1-125; above 1 makes a margin position.")] = 1,
    margin_mode: Annotated[
        bool | None, typer.Option("--isolated/--cross", help="Margin mode (default: config, isolated).")
    ] = None,
    prices: Annotated[
        list[str] | None,
        typer.Option(
            "--price",
            metavar="PRICE|SYMBOL=VALUE",
            help="Fill at PRICE instead of the market; SYMBOL=VALUE overrides another price.",
        ),
    ] = None,
    at: AtOpt = None,
    maker: Annotated[
        bool, typer.Option("--maker", help="With --price: a limit order that rested on the book, charged the maker fee.")
    ] = False,
    stop_loss: Annotated[str | None, typer.Option(help="Stop-loss price.")] = None,
    take_profit: Annotated[str | None, typer.Option(help="Take-profit price.")] = None,
    trailing_stop: Annotated[
        str | None, typer.Option(metavar="PCT", help="A stop trailing PCT % behind the best price since the fill.")
    ] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy tag.")] = None,
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Override the risk rules (recorded); never solvency.")] = False,
    off_market: Annotated[
        bool,
        typer.Option("--off-market", help="Take a --price outside Binance's price band around the market (recorded)."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be booked and the portfolio after it; book nothing.")
    ] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Open a paper position at the market price (or --price).

    Examples: [bold]portfolio open BTC/USDT --qty 0.05[/] ·
    [bold]portfolio open ETH/USDT --notional 2000 --leverage 5 --short --stop-loss 3900[/]
    """
    from portfolio_cli import render

    with running(command_line(), db, config, offline) as session:
        fill_price, overrides = split_prices(prices, allow_bare=True)
        session.overrides.update(overrides)
        request = services.OpenRequest(
            symbol=symbol,
            qty=amount(qty, "--qty"),
            notional=amount(notional, "--notional"),
            short=short,
            leverage=leverage,
            margin_mode=None if margin_mode is None else MarginMode.ISOLATED if margin_mode else MarginMode.CROSS,
            price=fill_price,
            at=parse_at(at),
            stop_loss=amount(stop_loss, "--stop-loss"),
            take_profit=amount(take_profit, "--take-profit"),
            trailing_pct=amount(trailing_stop, "--trailing-stop"),
            strategy=strategy,
            note=note,
            force=force,
            maker=maker,
            off_market=off_market,
        )
        if dry_run:
            from portfolio_cli.render.whatif import what_if_view
            from portfolio_cli.services.trading import preview_open

            what_if = preview_open(session, portfolio_name(session, portfolio), request)
            if json:
                print_json(what_if)
            else:
                stdout.print(what_if_view(what_if))
            if not what_if.would_book:
                raise RuleRefused(f"dry run: refused by {', '.join(what_if.refused_by)}; nothing was booked")
            return None
        fill = services.open_trade(session, portfolio_name(session, portfolio), request)
        if json:
            return print_json(fill)
        stdout.print(render.fill_view(fill))


@app.command()
def close(
    target: Annotated[
        str | None, typer.Argument(metavar="[TRADE_ID|SYMBOL]", help="A trade id, or a symbol (oldest first).")
    ] = None,
    qty: Annotated[str | None, typer.Option(help="Close this quantity (default: all).")] = None,
    pct: Annotated[str | None, typer.Option(help="Close this percentage of the open quantity.")] = None,
    side: Annotated[
        Side | None, typer.Option(help="With a symbol held both ways: the long or the short trades.")
    ] = None,
    margin: Annotated[
        bool | None, typer.Option("--margin/--spot", help="With a symbol held both ways: margin or spot trades.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Close every open position, in one transaction.")] = False,
    prices: Annotated[
        list[str] | None,
        typer.Option(
            "--price",
            metavar="PRICE|SYMBOL=VALUE",
            help="Exit at PRICE instead of the market; SYMBOL=VALUE overrides another price.",
        ),
    ] = None,
    at: AtOpt = None,
    maker: Annotated[
        bool, typer.Option("--maker", help="With --price: a limit order that rested on the book, charged the maker fee.")
    ] = False,
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
    off_market: Annotated[
        bool,
        typer.Option("--off-market", help="Take a --price outside Binance's price band around the market (recorded)."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be booked and the portfolio after it; book nothing.")
    ] = False,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Close a trade, or a symbol's open trades oldest first, in whole or in part; or everything.

    Examples: [bold]portfolio close 7[/] · [bold]portfolio close BTC/USDT --pct 50[/] ·
    [bold]portfolio close ETH/USDT --side short[/] · [bold]portfolio close --all[/]
    """
    from portfolio_cli import render

    with running(command_line(), db, config, offline) as session:
        exit_price, overrides = split_prices(prices, allow_bare=not every)
        session.overrides.update(overrides)
        name = portfolio_name(session, portfolio)
        if every:
            if target is not None or qty is not None or pct is not None or side is not None or margin is not None:
                raise InvalidInput("--all closes everything: give no trade, symbol, --qty, --pct, --side or --spot")
            if maker:
                raise InvalidInput("--maker needs --price: --all closes at market, always a taker")
            result = services.close_all(session, name, parse_at(at), note, dry_run)
        else:
            if target is None:
                raise InvalidInput("give a trade id or a symbol to close, or --all")
            result = services.close_trades(
                session,
                name,
                target,
                amount(qty, "--qty"),
                amount(pct, "--pct"),
                exit_price,
                parse_at(at),
                note,
                side,
                None if margin is None else Kind.MARGIN if margin else Kind.SPOT,
                maker,
                off_market,
                dry_run,
            )
        if json:
            return print_json(result)
        if dry_run:
            from portfolio_cli.render.whatif import close_what_if_view
            from portfolio_cli.services.trading import CloseWhatIf

            assert isinstance(result, CloseWhatIf)
            return stdout.print(close_what_if_view(result))
        stdout.print(render.close_view(result, ticks=session.prices.ticks()))
        stdout.print(
            f"Realized PnL {render.money(result.realized_pnl)} USDT gross, fees {render.money(result.fees)} USDT, "
            f"net {render.money(result.net_pnl)} USDT"
        )


@app.command()
def trades(
    status: Annotated[TradeStatus, typer.Option(help="Which trades.")] = TradeStatus.ALL,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    strategy: Annotated[str | None, typer.Option(help="Only this strategy tag.")] = None,
    since: Annotated[str | None, typer.Option("--from", help="Opened at or after (UTC date or time).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Opened before (UTC date or time).")] = None,
    costs: Annotated[
        bool, typer.Option("--costs", help="Show each trade's fees, liquidation fees and funding.")
    ] = False,
    voided: Annotated[
        bool, typer.Option("--voided", help="List the voided records instead: what, when, when voided and why.")
    ] = False,
    portfolio: PortfolioOpt = None,
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """List trades with their fills and realized PnL.

    Examples: [bold]portfolio trades --status closed --symbol BTC/USDT --from 2026-01-01[/] ·
    [bold]portfolio trades --costs[/] · [bold]portfolio trades --voided[/]
    """
    from portfolio_cli import render

    with running(command_line(), db, config) as session:
        if voided:
            from portfolio_cli.render.orders import voids_table
            from portfolio_cli.services.voids import VoidRow, list_voids

            if costs or symbol or strategy or since or until or status is not TradeStatus.ALL:
                raise InvalidInput("--voided lists every voided record: give no other filter")
            void_rows = list_voids(session, portfolio_name(session, portfolio))
            if json:
                return print_json(void_rows, list[VoidRow])
            stdout.print(voids_table(void_rows) if void_rows else "No voided records")
            return None
        rows = services.list_trades(
            session,
            portfolio_name(session, portfolio),
            status,
            symbol,
            strategy,
            parse_at(since, "--from"),
            parse_at(until, "--to"),
        )
        if json:
            return print_json(rows, list[services.TradeRow])
        stdout.print(render.trades_table(rows, costs=costs, ticks=session.prices.ticks()) if rows else "No trades")


@app.command()
def positions(
    at: AsOfOpt = None,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Open positions by symbol and side, with weighted-average entry and mark.

    Examples: [bold]portfolio positions --offline[/] · [bold]portfolio positions --at 2026-03-01[/]
    """
    from portfolio_cli import render

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        result = services.value(session, portfolio_name(session, portfolio), aggregate=True, at=parse_at(at))
        if json:
            from portfolio_cli.engine.valuation import PositionValue

            return print_json(list(result.valuation.positions), list[PositionValue])
        if not result.valuation.positions:
            return stdout.print("No open positions" + (f" at {result.as_of:%Y-%m-%d %H:%M} UTC" if at else ""))
        title = f"Positions at {result.as_of:%Y-%m-%d %H:%M} UTC" if at else "Positions"
        stdout.print(
            render.positions_table(result.valuation.positions, result.as_of, title=title, ticks=session.prices.ticks())
        )
        for line in render.trailing_lines(result):
            stdout.print(line)


@app.command()
def value(
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Refresh until Ctrl-C or SIGTERM: a full-screen frame on a terminal; on a pipe one frame "
            "(or, with --json, one JSON line) per refresh.",
        ),
    ] = False,
    interval: Annotated[float, typer.Option("--interval", "-n", min=1, help="Seconds between refreshes.")] = 10.0,
    at: AsOfOpt = None,
    portfolio: PortfolioOpt = None,
    offline: OfflineOpt = False,
    prices: PricesOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> ExitCode | None:
    """Where you stand: equity, cash, margin and every open position at current prices.

    Examples: [bold]portfolio value[/] · [bold]portfolio value --watch -n 5[/] ·
    [bold]portfolio value --offline --json[/] · [bold]portfolio value --at 2026-03-01T12:00[/]

    --watch ends with exit code 130 on Ctrl-C (SIGINT) and 143 on SIGTERM.
    """
    from portfolio_cli import render

    with running(command_line(), db, config, offline) as session:
        session.overrides.update(split_prices(prices, allow_bare=False)[1])
        name = portfolio_name(session, portfolio)
        moment = parse_at(at)
        if watch and moment is not None:
            raise InvalidInput("--watch shows the present; it cannot be combined with --at")
        if watch:
            from portfolio_cli.cli.watch import watch as watch_value

            return watch_value(session, name, interval, json, stdout)
        result = services.value(session, name, at=moment)
        if json:
            print_json(result)
        else:
            note = f" at {render.moment(moment)}" if moment else ""
            stdout.print(render.value_view(result, title_note=note, ticks=session.prices.ticks()))
    return ExitCode.OK


@app.command()
def paths(
    offline: QuietOfflineOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show which ledger, config file, data directory and cache directory are in use.

    Example: [bold]portfolio paths[/]
    """
    with running(command_line(), db, config) as session:
        found = {
            "ledger": str(session.paths.ledger),
            "config": str(session.paths.config) if session.paths.config else None,
            "data": str(session.paths.data),
            "cache": str(session.paths.cache),
        }
        from portfolio_cli.services.notify import destinations_of

        # Notification URLs hold tokens and passwords: their scheme only.
        notify = [d.shown for d in destinations_of(session.settings, None)]
        if json:
            return print_json({**found, "notify": notify})
        for key, path in found.items():
            stdout.print(f"{key:<7} {path or '(none: built-in defaults)'}", highlight=False, markup=False)
        if notify:
            stdout.print(f"{'notify':<7} {', '.join(notify)}", highlight=False, markup=False)


@app.command()
def demo(
    offline: QuietOfflineOpt = False,
    json: JsonOpt = False,
) -> None:
    """Build a demo portfolio from bundled prices (no network) and show it with its month's history.

    It uses its own ledger (demo.db in the data directory), rebuilt on every run.
    Example: [bold]portfolio demo[/]
    """
    from portfolio_cli import render
    from portfolio_cli.demo import demo_ledger, run_demo

    with running(command_line(), creates_ledger=True) as session:
        result, history, as_of = run_demo(session)
        if json:
            return print_json(result)
        from portfolio_cli.render.history import history_view

        stdout.print(f"[bold yellow]DEMO DATA[/] — bundled prices as of {as_of:%Y-%m-%d %H:%M} UTC, not live.")
        stdout.print(render.value_view(result, title_note=" (demo)"))
        stdout.print(history_view(history, stdout.width))
        stdout.print(
            f"The full performance report: [bold]portfolio report -p demo --db {demo_ledger()} --offline[/]",
            highlight=False,
            soft_wrap=True,
        )


# The commands this module registers; the others are loaded on demand (see cli/__init__).
CORE = frozenset(
    (c.name or (c.callback.__name__ if c.callback else "")).replace("_", "-") for c in app.registered_commands
)
