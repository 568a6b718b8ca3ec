"""Rich renderables built from engine and service results. Pure: nothing here prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from portfolio_cli.engine.valuation import PositionValue
from portfolio_cli.formatting import NA as NA  # re-exported: the render modules import it from here
from portfolio_cli.formatting import age, day, duration, leverage, moment, money, pct, price, qty
from portfolio_cli.render.fit import FitTable
from portfolio_cli.text import printable
from portfolio_cli.text import safe as safe  # re-exported: the render modules import it from here

if TYPE_CHECKING:
    from portfolio_cli.services import CloseResult, Fill, PortfolioSummary, PortfolioValue, TradeRow


number = qty  # quantities: as recorded, see formatting.qty

Ticks = Mapping[str, Decimal]  # each symbol's price tick, where its market is known
NO_TICKS: Ticks = MappingProxyType({})


def signed(value: Decimal | None, text: str | None = None) -> Text:
    """Green for gains, red for losses."""
    shown = text if text is not None else money(value)
    if value is None or value == 0:
        return Text(shown)
    return Text(shown, style="green" if value > 0 else "red")


def add_numeric_columns(table: Table, *names: str) -> None:
    for name in names:
        table.add_column(name, justify="right")


MARGIN_STYLE = {
    "ok": "green",
    "warning": "yellow",
    "liquidation risk": "bold red",
    "critical": "bold white on red",
    "n/a": "",
}
MARGIN_LINE = {
    "ok": "at or above the 200 % warning line",
    "warning": "below the 200 % warning line",
    "liquidation risk": "below the 150 % alert line",
    "critical": "below 110 %: check closes the most losing cross position",
    "n/a": "no margin in use",
}
SOURCE_LABEL = {"binance": "live", "override": "--price"}


def price_label(source: str, at: datetime, now: datetime, stale: bool = False) -> str:
    """Where a mark comes from and how old it is: ``live, 2 s``, ``cache, 3 h``, ``last fill, 2 d``."""
    return f"{SOURCE_LABEL.get(source, source)}, {age(at, now)}" + (" (stale)" if stale else "")


def margin_state_text(state: str, level: Decimal | None) -> Text:
    shown = f"{pct(level)} % · {state}: {MARGIN_LINE[state]}" if level is not None else MARGIN_LINE[state]
    return Text(shown, style=MARGIN_STYLE.get(state, ""))


def value_view(result: PortfolioValue, title_note: str = "", ticks: Ticks = NO_TICKS) -> Group:
    v = result.valuation
    summary = FitTable(title=f"Portfolio {safe(result.portfolio)}{title_note}", show_header=False, box=None)
    summary.add_column("figure")
    summary.add_column("USDT", justify="right")
    perf = result.performance
    rows: list[tuple[str, str | Text]] = [
        ("Equity (portfolio value)", money(v.equity)),
        ("Wallet balance", money(v.wallet_balance)),
        ("Cash available (free margin)", money(v.free_margin)),
        ("Spot holdings", money(v.spot_holdings)),
        ("Unrealized PnL", signed(v.unrealized_pnl)),
        ("Realized PnL (gross)", signed(v.realized_pnl)),
        ("Fees paid", money(v.fees)),
        *([("Liquidation fees", money(v.liquidation_fees))] if v.liquidation_fees else []),
        *([("Funding (received − paid)", signed(v.funding))] if v.funding else []),
        ("Margin used", money(v.margin_used)),
        *([("Held by open orders", money(v.reserved_margin))] if v.reserved_margin else []),
    ]
    if perf is not None:
        rows[-1:-1] = [
            ("Net deposits", money(perf.net_deposits)),
            ("Total PnL (realized + unrealized − fees + funding)", signed(perf.total_pnl)),
            ("ROI % (total PnL / net deposits)", signed(perf.roi_pct, pct(perf.roi_pct))),
        ]
    for label, shown in rows:
        summary.add_row(label, shown)
    state = Text.assemble("Margin level: ", margin_state_text(str(result.margin_state), v.margin_level_pct))
    if not v.positions:
        return Group(summary, state, Text("\nNo open positions"))
    parts: list = [
        summary,
        state,
        positions_table(v.positions, result.as_of, show_price=not result.levels, ticks=ticks),
    ]
    if result.levels:
        parts.append(levels_table(result, ticks=ticks))
    for lv in result.levels:
        if lv.crossed is None:
            continue
        parts.append(
            Text(
                f"trade {lv.trade_id}: the mark is past its {lv.crossed.replace('_', ' ')}; "
                "`portfolio check` closes it",
                style="yellow",
            )
        )
    return Group(*parts)


def trailing_lines(result: PortfolioValue) -> list[Text]:
    """One line per trailing stop: its level now and how far behind the best price it trails."""
    return [
        Text(
            f"trade {t.trade_id} {t.symbol}: trailing stop {price(t.level)} ({pct(t.pct)}% trail"
            + (f", {pct(t.distance_pct)}% from the mark)" if t.distance_pct is not None else ")")
        )
        for t in result.trailing
    ]


def _level(level: Decimal | None, distance: Decimal | None, tick: Decimal | None) -> str:
    return "" if level is None else f"{price(level, tick)} ({pct(distance)}%)"


def levels_table(
    result: PortfolioValue, title: str = "Levels (distance from the mark)", ticks: Ticks = NO_TICKS
) -> Table:
    positions = {p.trade_id: p for p in result.valuation.positions}
    trailing = any(lv.trailing_stop is not None for lv in result.levels)
    table = FitTable(title=title, box=box.SIMPLE_HEAD, drop=("open for", "take-profit", "stop"))
    table.add_column("id", justify="right")
    table.add_column("symbol")
    add_numeric_columns(table, "liquidation", "stop", *(("trailing",) if trailing else ()), "take-profit")
    add_numeric_columns(table, "open for", "price")
    for lv in result.levels:
        p = positions[lv.trade_id]
        tick = ticks.get(p.symbol)
        trail = (_level(lv.trailing_stop, lv.trailing_distance_pct, tick),) if trailing else ()
        table.add_row(
            str(lv.trade_id),
            safe(p.symbol),
            _level(lv.liquidation_price, lv.liquidation_distance_pct, tick)
            or ("none" if p.kind == "margin" else "spot"),
            _level(lv.stop_loss, lv.stop_distance_pct, tick),
            *trail,
            _level(lv.take_profit, lv.take_profit_distance_pct, tick),
            duration((result.as_of - lv.opened_at).total_seconds()),
            Text(
                price_label(p.price_source, p.price_at, result.as_of, p.price_stale),
                style="yellow" if p.price_stale else "",
            ),
        )
    return table


def positions_table(
    positions: Sequence[PositionValue],
    now: datetime,
    title: str = "Open positions",
    show_price: bool = True,
    ticks: Ticks = NO_TICKS,
) -> Table:
    stale = any(p.price_stale for p in positions)
    caption = "value and uPnL in USDT" + ("; * stale: the exchange could not be reached" if stale else "")
    table = FitTable(
        title=title,
        box=box.SIMPLE_HEAD,
        caption=caption,
        drop=("alloc%", "lev", "uPnL%", "24h %", "value", "side", "price", "entry"),
    )
    aggregated = any(p.trade_id is None for p in positions)
    table.add_column("trades" if aggregated else "id", justify="right")
    table.add_column("symbol", no_wrap=True)
    table.add_column("side")
    add_numeric_columns(table, "qty", "entry", "mark", "value", "uPnL", "uPnL%", "alloc%", "lev")
    changes = any(p.change_24h_pct is not None for p in positions)
    if changes:
        table.add_column("24h %", justify="right")
    if show_price:
        table.add_column("price", justify="right")
    for p in positions:
        lev = "spot" if p.kind == "spot" else leverage(p.leverage)
        label = (price_label(p.price_source, p.price_at, now, p.price_stale),) if show_price else ()
        change = (signed(p.change_24h_pct, pct(p.change_24h_pct)),) if changes else ()
        table.add_row(
            ",".join(map(str, p.trade_ids)),
            safe(p.symbol),
            p.side,
            number(p.qty),
            price(p.entry, ticks.get(p.symbol)),
            Text(
                price(p.mark, ticks.get(p.symbol)) + ("*" if p.price_stale else ""),
                style="yellow" if p.price_stale else "",
            ),
            money(p.value),
            signed(p.unrealized_pnl),
            signed(p.unrealized_pnl_pct, pct(p.unrealized_pnl_pct)),
            pct(p.allocation_pct),
            lev,
            *change,
            *label,
        )
    return table


def fill_view(fill: Fill) -> Group:
    what = f"{fill.side} {fill.kind}" + (f" {fill.leverage}x {fill.margin_mode}" if fill.margin_mode else "")
    heading = Text(f"Opened trade {fill.trade_id}: {what} {fill.symbol}", style="bold")
    table = FitTable(show_header=False, box=None)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row(
        "Fill price",
        price(fill.price, fill.price_tick)
        + ("" if fill.price == fill.price_usdt else f" (= {money(fill.price_usdt)} USDT)"),
    )
    if fill.market and fill.market != fill.symbol:
        table.add_row("Market", f"{safe(fill.market)} (USDⓈ-M perpetual)")
    if fill.fill_note:
        table.add_row("Filled by", safe(fill.fill_note))
    table.add_row("Quantity", number(fill.qty))
    table.add_row("Notional", f"{money(fill.notional)} USDT")
    table.add_row("Fee", f"{money(fill.fee)} USDT")
    table.add_row("Margin committed", f"{money(fill.margin)} USDT")
    if fill.kind == "margin":
        liquidation = price(fill.liquidation_price, fill.price_tick) if fill.liquidation_price else "none"
        table.add_row("Liquidation price", liquidation)
    table.add_row("Time", moment(fill.at))
    if fill.overridden_rules:
        table.add_row("Rules overridden", ", ".join(fill.overridden_rules))
    return Group(heading, table)


def close_view(result: CloseResult, ticks: Ticks = NO_TICKS) -> Table:
    table = FitTable(
        title=f"Closed at {moment(result.at)}",
        box=box.SIMPLE_HEAD,
        caption="PnL and fees in USDT",
        drop=("left open", "close", "gross PnL", "entry", "fees"),
    )
    table.add_column("trade", justify="right")
    table.add_column("close", justify="right")  # the close's own id (what `portfolio void close:ID` takes)
    table.add_column("symbol")
    add_numeric_columns(table, "qty", "entry", "exit", "gross PnL", "fees", "net PnL", "left open")
    for s in result.slices:
        table.add_row(
            str(s.trade_id),
            str(s.close_id) if s.close_id else "",
            safe(s.symbol),
            number(s.qty),
            price(s.entry, ticks.get(s.symbol)),
            price(s.exit, ticks.get(s.symbol)),
            signed(s.realized_pnl),
            money(s.entry_fee + s.exit_fee),
            signed(s.net_pnl),
            number(s.remaining_qty),
        )
    if len(result.slices) > 1:
        table.add_row(
            "total", "", "", "", "", "", signed(result.realized_pnl), money(result.fees), signed(result.net_pnl), ""
        )
    return table


def trades_table(rows: Sequence[TradeRow], costs: bool = False, ticks: Ticks = NO_TICKS) -> Table:
    """One row per trade; ``costs`` splits its costs into trading fees, liquidation and funding."""
    caption = (
        "USDT · gross: realized PnL of the closed part · fees: its trading fees (its share of the entry fee "
        "and the exit fees) · liq. fee: liquidation fees · net = gross − fees − liq. fee · open fee: the "
        "entry fee of the part still open, in net once it closes · funding: all of the trade's, not in net · "
        "net+fund. = net + funding"
        if costs
        else "net PnL and fees in USDT"
    )
    drop = (
        ("opened", "status", "side", "liq. fee", "open fee", "gross", "closed by")
        if costs
        else ("strategy", "fees", "status", "opened", "entry")
    )
    table = FitTable(title="Trades", box=box.SIMPLE_HEAD, padding=(0, 0), caption=caption, drop=drop)
    table.add_column("id", justify="right")
    table.add_column("opened", no_wrap=True)
    table.add_column("symbol", no_wrap=True)
    table.add_column("side")
    table.add_column("status")
    if costs:
        add_numeric_columns(table, "gross", "fees", "liq. fee", "net", "open fee", "funding", "net+fund.")
        table.add_column("closed by")
    else:
        add_numeric_columns(table, "qty", "entry", "exit", "net PnL", "fees")
        table.add_column("strategy", wrap=True)
    for r in rows:
        side = f"{r.side} " + (f"{r.leverage}x" if r.kind == "margin" else "spot")
        lead = (str(r.id), day(r.opened_at), safe(r.symbol), side, r.status)
        table.add_row(*lead, *(_cost_cells(r) if costs else _fill_cells(r, ticks.get(r.symbol))))
    return table


def _fill_cells(r: TradeRow, tick: Decimal | None) -> tuple:
    qty = number(r.qty) if r.status != "partial" else f"{number(r.open_qty)}/{number(r.qty)}"
    return (
        qty,
        price(r.entry, tick),
        price(r.exit, tick) if r.exit is not None else "",
        signed(r.net_pnl) if r.status != "open" else "",
        money(r.fees),
        safe(r.strategy or ""),
    )


def _cost_cells(r: TradeRow) -> tuple:
    return (
        signed(r.realized_pnl),
        money(r.closed_fees),
        money(r.liquidation_fees),
        signed(r.net_pnl),
        money(r.open_fee),
        signed(r.funding),
        signed(r.net_pnl + r.funding),
        (r.closed_by or "").replace("_", " "),
    )


def portfolios_table(rows: Sequence[PortfolioSummary]) -> Table:
    table = FitTable(title="Portfolios", box=box.SIMPLE_HEAD)
    table.add_column("name")
    table.add_column("created", no_wrap=True)
    add_numeric_columns(table, "wallet USDT", "open trades")
    for r in rows:
        table.add_row(
            safe(r.name) + (" (default)" if r.is_default else ""),
            moment(r.created_at),
            money(r.wallet_balance),
            str(r.open_trades),
        )
    return table


def watch_view(
    result: PortfolioValue, updated: datetime, interval: float, warnings: Sequence[str], ticks: Ticks = NO_TICKS
) -> Group:
    """One frame of ``value --watch``: when it was drawn, how often, the value view, and the warnings
    of this refresh inside the frame (a stale price is also marked in its row)."""
    header = Text.assemble(
        ("Updated ", "bold"),
        (f"{updated:%Y-%m-%d %H:%M:%S} UTC", "bold"),
        f" · every {duration(interval)} · Ctrl-C to stop",
    )
    lines = [Text(f"warning: {printable(w)}", style="yellow") for w in warnings]
    return Group(header, value_view(result, ticks=ticks), *lines)
