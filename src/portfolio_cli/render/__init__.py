"""Rich renderables built from engine and service results. Pure: nothing here prints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from portfolio_cli.engine.valuation import PositionValue
from portfolio_cli.text import printable

if TYPE_CHECKING:
    from portfolio_cli.services import CloseResult, Fill, PortfolioSummary, PortfolioValue, TradeRow

NA = "n/a"


def safe(text: str) -> str:
    """User text inside rich markup: control characters escaped (``printable``), markup escaped."""
    return escape(printable(text))


def money(value: Decimal | None, places: int = 2) -> str:
    """USDT amounts: thousands separators, ``places`` decimals, rounded half up."""
    if value is None:
        return NA
    return f"{value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):,}"


def number(value: Decimal | None) -> str:
    """Quantities exactly as recorded (up to the ledger's 8 places), with thousands separators."""
    if value is None:
        return NA
    whole, dot, frac = f"{value.normalize():f}".partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}{dot}{frac}"


def price(value: Decimal | None) -> str:
    """Prices as recorded, with at least two decimals."""
    if value is None:
        return NA
    whole, _, frac = number(value).partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def pct(value: Decimal | None) -> str:
    return NA if value is None else f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"


def signed(value: Decimal | None, text: str | None = None) -> Text:
    """Green for gains, red for losses."""
    shown = text if text is not None else money(value)
    if value is None or value == 0:
        return Text(shown)
    return Text(shown, style="green" if value > 0 else "red")


def age(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def add_numeric_columns(table: Table, *names: str) -> None:
    for name in names:
        table.add_column(name, justify="right")


def value_view(result: PortfolioValue, title_note: str = "") -> Group:
    v = result.valuation
    summary = Table(title=f"Portfolio {safe(result.portfolio)}{title_note}", show_header=False, box=None)
    summary.add_column("figure")
    summary.add_column("USDT", justify="right")
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
        ("Margin level %", pct(v.margin_level_pct)),
    ]
    for label, shown in rows:
        summary.add_row(label, shown)
    if not v.positions:
        return Group(summary, Text("\nNo open positions"))
    return Group(summary, positions_table(v.positions, result.as_of))


def positions_table(positions: Sequence[PositionValue], now: datetime, title: str = "Open positions") -> Table:
    cached = any(p.price_source == "cache" for p in positions)
    caption = "value and uPnL in USDT" + ("; * cached price" if cached else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), caption=caption)
    aggregated = any(p.trade_id is None for p in positions)
    table.add_column("trades" if aggregated else "id", justify="right")
    table.add_column("symbol", no_wrap=True)
    table.add_column("side")
    add_numeric_columns(table, "qty", "entry", "mark", "value", "uPnL", "uPnL%", "alloc%", "lev", "age")
    for p in positions:
        lev = "spot" if p.kind == "spot" else f"{p.leverage.normalize():f}x"
        table.add_row(
            ",".join(map(str, p.trade_ids)),
            safe(p.symbol),
            p.side,
            number(p.qty),
            price(p.entry),
            price(p.mark),
            money(p.value),
            signed(p.unrealized_pnl),
            signed(p.unrealized_pnl_pct, pct(p.unrealized_pnl_pct)),
            pct(p.allocation_pct),
            lev,
            age(p.price_at, now) + ("*" if p.price_source == "cache" else ""),
        )
    return table


def fill_view(fill: Fill) -> Group:
    what = f"{fill.side} {fill.kind}" + (f" {fill.leverage}x {fill.margin_mode}" if fill.margin_mode else "")
    heading = Text(f"Opened trade {fill.trade_id}: {what} {fill.symbol}", style="bold")
    table = Table(show_header=False, box=None)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row(
        "Fill price",
        price(fill.price) + ("" if fill.price == fill.price_usdt else f" (= {money(fill.price_usdt)} USDT)"),
    )
    table.add_row("Quantity", number(fill.qty))
    table.add_row("Notional", f"{money(fill.notional)} USDT")
    table.add_row("Fee", f"{money(fill.fee, 8)} USDT")
    table.add_row("Margin committed", f"{money(fill.margin)} USDT")
    table.add_row("Time", f"{fill.at:%Y-%m-%d %H:%M:%S} UTC")
    if fill.overridden_rules:
        table.add_row("Rules overridden", ", ".join(fill.overridden_rules))
    return Group(heading, table)


def close_view(result: CloseResult) -> Table:
    table = Table(
        title=f"Closed at {result.at:%Y-%m-%d %H:%M:%S} UTC", box=box.SIMPLE_HEAD, caption="PnL and fees in USDT"
    )
    table.add_column("trade", justify="right")
    table.add_column("symbol")
    add_numeric_columns(table, "qty", "entry", "exit", "gross PnL", "fees", "net PnL", "left open")
    for s in result.slices:
        table.add_row(
            str(s.trade_id),
            safe(s.symbol),
            number(s.qty),
            price(s.entry),
            price(s.exit),
            signed(s.realized_pnl),
            money(s.entry_fee + s.exit_fee, 4),
            signed(s.net_pnl),
            number(s.remaining_qty),
        )
    if len(result.slices) > 1:
        table.add_row(
            "total", "", "", "", "", signed(result.realized_pnl), money(result.fees, 4), signed(result.net_pnl), ""
        )
    return table


def trades_table(rows: Sequence[TradeRow], costs: bool = False) -> Table:
    """One row per trade; ``costs`` splits its costs into trading fees, liquidation and funding."""
    caption = (
        "USDT · gross: realized PnL of the closed part · fees: its trading fees (its share of the entry fee "
        "and the exit fees) · liq. fee: liquidation fees · net = gross − fees − liq. fee · open fee: the "
        "entry fee of the part still open, in net once it closes · funding: all of the trade's, not in net · "
        "net+fund. = net + funding"
        if costs
        else "net PnL and fees in USDT"
    )
    table = Table(title="Trades", box=box.SIMPLE_HEAD, padding=(0, 0), caption=caption)
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
        table.add_column("strategy")
    for r in rows:
        side = f"{r.side} " + (f"{r.leverage}x" if r.kind == "margin" else "spot")
        lead = (str(r.id), f"{r.opened_at:%Y-%m-%d}", safe(r.symbol), side, r.status)
        table.add_row(*lead, *(_cost_cells(r) if costs else _fill_cells(r)))
    return table


def _fill_cells(r: TradeRow) -> tuple:
    qty = number(r.qty) if r.status != "partial" else f"{number(r.open_qty)}/{number(r.qty)}"
    return (
        qty,
        price(r.entry),
        price(r.exit) if r.exit is not None else "",
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
    table = Table(title="Portfolios")
    table.add_column("name")
    table.add_column("created (UTC)")
    add_numeric_columns(table, "wallet USDT", "open trades")
    for r in rows:
        table.add_row(
            safe(r.name) + (" (default)" if r.is_default else ""),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            money(r.wallet_balance),
            str(r.open_trades),
        )
    return table
