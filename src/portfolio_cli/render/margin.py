"""Tables for margin, stress, position sizing and check results."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from portfolio_cli.engine.margin import MarginState
from portfolio_cli.formatting import leverage, moment
from portfolio_cli.money import ZERO
from portfolio_cli.render import NO_TICKS, Ticks, money, number, pct, price, safe, signed
from portfolio_cli.render.fit import FitTable
from portfolio_cli.services.check import CheckResult
from portfolio_cli.services.margin import MarginReport, MarginUpdate, PositionSize

STATE_STYLE = {
    MarginState.OK: "green",
    MarginState.WARNING: "yellow",
    MarginState.ALERT: "bold red",
    MarginState.CRITICAL: "bold white on red",
    MarginState.NONE: "",
}


def state_text(state: MarginState) -> Text:
    return Text(str(state), style=STATE_STYLE[state])


def margin_view(report: MarginReport, ticks: Ticks = NO_TICKS) -> Group:
    a = report.account
    summary = FitTable(title=f"Margin — {safe(report.portfolio)}", show_header=False, box=None)
    summary.add_column("figure")
    summary.add_column("USDT", justify="right")
    summary.add_row("Equity", money(a.equity))
    summary.add_row("Margin equity (equity − spot)", money(a.margin_equity))
    summary.add_row("Margin used", money(a.margin_used))
    summary.add_row("Maintenance margin", money(a.maintenance_margin))
    summary.add_row("Free margin", money(a.free_margin))
    if a.cross_margin_ratio_pct is not None or any(p.mode == "cross" for p in a.positions):
        summary.add_row("Cross margin balance", money(a.cross_margin_balance))
        summary.add_row("Cross margin ratio % (Binance: liquidation at 100)", pct(a.cross_margin_ratio_pct))
    summary.add_row("Margin level % (account rules)", pct(a.margin_level_pct))
    summary.add_row("State (account rules)", state_text(a.state))
    parts: list = [summary]
    if a.positions:
        table = FitTable(
            title="Margin positions",
            box=box.SIMPLE_HEAD,
            drop=("maint.", "mode", "margin", "entry", "dist. %", "lev", "side"),
        )
        table.add_column("id", justify="right")
        table.add_column("symbol", no_wrap=True)
        table.add_column("side")
        table.add_column("mode")
        for name in ("lev", "qty", "entry", "mark", "margin", "maint.", "uPnL", "liq. price", "dist. %"):
            table.add_column(name, justify="right")
        for p in a.positions:
            table.add_row(
                str(p.trade_id),
                safe(p.symbol),
                p.side,
                p.mode + ("*" if p.mode == "cross" else ""),
                leverage(p.leverage),
                number(p.qty),
                price(p.entry, ticks.get(p.symbol)),
                price(p.mark, ticks.get(p.symbol)),
                money(p.margin),
                money(p.maintenance_margin),
                signed(p.unrealized_pnl),
                price(p.liquidation_price, ticks.get(p.symbol)),
                pct(p.distance_pct),
            )
        if any(p.mode == "cross" for p in a.positions):
            table.caption = "* cross: Binance's liquidation price with every other cross position at its mark"
        parts.append(table)
    else:
        parts.append(Text("\nNo margin positions"))
    parts.append(stress_table(report))
    return Group(*parts)


def stress_table(report: MarginReport) -> Table:
    moved = ", ".join(f"{s} β {b:.2f}" for s, b in sorted(report.betas.items()) if s != "BTC/USDT")
    caption = "others move by their beta to BTC" + (f" ({moved})" if moved else "") + "; 1:1 where unknown"
    table = FitTable(title="Stress: if BTC moved", box=box.SIMPLE_HEAD, caption=caption)
    table.add_column("BTC move", justify="right")
    table.add_column("equity", justify="right")
    table.add_column("margin level %", justify="right")
    table.add_column("state")
    table.add_column("liquidated trades")
    for row in report.stress:
        table.add_row(
            f"{row.btc_move_pct:+d}%",
            signed(row.equity - report.account.equity, money(row.equity)),
            pct(row.margin_level_pct),
            state_text(row.state),
            ", ".join(map(str, row.liquidated)) or "none",
        )
    return table


def margin_update_view(update: MarginUpdate, ticks: Ticks = NO_TICKS) -> str:
    liq = price(update.liquidation_price, ticks.get(update.symbol))
    return (
        f"Trade {update.trade_id} {update.symbol}: {update.mode} margin {money(update.margin)} USDT "
        f"(added {money(update.added_margin)}), liquidation price {liq}; free margin {money(update.free_margin)} USDT"
    )


def size_view(size: PositionSize, ticks: Ticks = NO_TICKS) -> Group:
    what = f"{size.side} {size.kind}" + (f" {size.leverage}x" if size.kind == "margin" else "")
    heading = Text(f"Position size for {what} {size.symbol}: {number(size.qty)}", style="bold")
    table = FitTable(show_header=False, box=None)
    table.add_column("field")
    table.add_column("value", justify="right")
    tick = ticks.get(size.symbol)
    table.add_row("Entry / stop", f"{price(size.entry, tick)} / {price(size.stop, tick)}")
    table.add_row("Notional", f"{money(size.notional)} USDT")
    table.add_row("Margin", f"{money(size.margin)} USDT")
    table.add_row("Loss at the stop", f"{money(size.risk)} USDT of equity {money(size.equity)}")
    table.add_row("Bound by", size.bound_by)
    caps = FitTable(title="Caps (quantity each allows)", box=box.SIMPLE_HEAD)
    caps.add_column("cap")
    caps.add_column("max qty", justify="right")
    caps.add_column("rule", wrap=True)
    for cap in size.caps:
        caps.add_row(cap.name + (" ◀" if cap.name == size.bound_by else ""), number(cap.qty), cap.detail)
    return Group(heading, table, caps)


def gap_lines(result: CheckResult) -> list[str]:
    """Each window ``check`` could not replay (its symbol, timeframe and minutes), one line each."""
    return [f"{e.portfolio}: {e.message}" for c in result.portfolios for e in c.events if e.kind == "gap"]


def check_view(result: CheckResult, quiet: bool) -> Group | None:
    """Notable events (closes, margin warnings) line by line; funding, being routine, as one total
    per portfolio. ``quiet`` prints the notable events only, so cron mails only when one happened.
    Gaps are not here: they go to stderr (``gap_lines``) with exit 13."""
    lines: list = []
    for c in result.portfolios:
        for e in c.events:
            if e.kind not in {"funding", "gap"}:
                style = "yellow" if e.kind == "warning" else "bold red"
                lines.append(Text(f"{moment(e.at)} {e.portfolio}: {e.kind}: {e.message}", style=style))
    if quiet:
        return Group(*lines) if lines else None
    table = FitTable(
        title=f"Check at {moment(result.checked_at)}", box=box.SIMPLE_HEAD, drop=("candles", "since", "funding USDT")
    )
    table.add_column("portfolio")
    table.add_column("since", no_wrap=True)
    table.add_column("candles")
    table.add_column("closed", justify="right")
    table.add_column("funding USDT", justify="right")
    table.add_column("margin level %", justify="right")
    table.add_column("state")
    for c in result.portfolios:
        funding = [e.amount for e in c.events if e.kind == "funding" and e.amount is not None]
        closed = sum(1 for e in c.events if e.trade_id is not None and e.kind != "funding")
        table.add_row(
            safe(c.portfolio),
            moment(c.since),
            c.timeframe or "-",
            str(closed),
            f"{signed(sum(funding, ZERO)).plain} ({len(funding)})" if funding else "-",
            pct(c.margin_level_pct),
            state_text(c.state),
        )
    return Group(table, *lines) if lines else Group(table, Text("Nothing to report"))
