"""What a dry run would book: the fill, the portfolio after it, and every rule's verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Group
from rich.text import Text

from portfolio_cli.formatting import moment, money, pct, price, qty
from portfolio_cli.render import safe
from portfolio_cli.render.fit import FitTable

if TYPE_CHECKING:
    from portfolio_cli.services.trading import CloseWhatIf, WhatIf


def what_if_view(result: WhatIf, heading_text: str | None = None) -> Group:
    what = f"{result.side} {result.kind}" + (
        f" {result.leverage}x {result.margin_mode}" if result.margin_mode else ""
    )
    verdict = "would be booked" if result.would_book else f"would be refused ({', '.join(result.refused_by)})"
    heading = Text(heading_text or f"Dry run: {what} {result.symbol} {verdict}; nothing booked", style="bold")
    fill = FitTable(show_header=False, box=None)
    fill.add_column("field")
    fill.add_column("value", justify="right")
    tick = result.price_tick
    fill.add_row("Fill price", price(result.price, tick))
    if result.market != result.symbol:
        fill.add_row("Market", f"{safe(result.market)} (USDⓈ-M perpetual)")
    if result.fill_note:
        fill.add_row("Filled by", safe(result.fill_note))
    fill.add_row("Quantity", qty(result.qty))
    fill.add_row("Notional", f"{money(result.notional)} USDT")
    fill.add_row("Fee", f"{money(result.fee)} USDT")
    fill.add_row("Margin committed", f"{money(result.margin)} USDT")
    if result.kind == "margin":
        fill.add_row("Liquidation price", price(result.liquidation_price, tick) if result.liquidation_price else "none")
    fill.add_row("Time", moment(result.at))
    fill.add_row("Equity", f"{money(result.equity_before)} → {money(result.equity_after)} USDT")
    fill.add_row("Free margin", f"{money(result.free_margin_before)} → {money(result.free_margin_after)} USDT")
    fill.add_row(
        "Margin level", f"{pct(result.margin_level_before_pct)} → {pct(result.margin_level_after_pct)} %"
    )
    fill.add_row("Allocation after", f"{pct(result.allocation_after_pct)} % of equity")
    if result.off_market:
        fill.add_row("Off market", safe(result.off_market))
    rules = FitTable(title="Risk rules", box=box.SIMPLE_HEAD)
    rules.add_column("rule")
    rules.add_column("verdict")
    rules.add_column("figures", wrap=True)
    for rule in result.rules:
        mark = "pass" if rule.passed else "FAIL" + (" (solvency)" if rule.solvency else "")
        rules.add_row(rule.rule, mark, safe(rule.figures))
    return Group(heading, fill, rules)


def close_what_if_view(result: CloseWhatIf) -> Group:
    heading = Text(f"Dry run: close at {moment(result.at)}; nothing booked", style="bold")
    table = FitTable(box=box.SIMPLE_HEAD, caption="PnL and fees in USDT")
    table.add_column("trade", justify="right")
    table.add_column("symbol")
    for name in ("qty", "exit", "net PnL", "left open"):
        table.add_column(name, justify="right")
    for s in result.slices:
        table.add_row(
            str(s.trade_id), safe(s.symbol), qty(s.qty), price(s.exit), money(s.net_pnl), qty(s.remaining_qty)
        )
    after = FitTable(show_header=False, box=None)
    after.add_column("field")
    after.add_column("value", justify="right")
    after.add_row("Realized PnL", f"{money(result.realized_pnl)} USDT gross, fees {money(result.fees)} USDT")
    after.add_row("Net", f"{money(result.net_pnl)} USDT")
    after.add_row("Equity", f"{money(result.equity_before)} → {money(result.equity_after)} USDT")
    after.add_row("Free margin", f"{money(result.free_margin_before)} → {money(result.free_margin_after)} USDT")
    after.add_row("Margin level", f"{pct(result.margin_level_before_pct)} → {pct(result.margin_level_after_pct)} %")
    return Group(heading, table, after)
