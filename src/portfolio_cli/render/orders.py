"""Amendments, pending orders and voids as rich renderables."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from portfolio_cli.engine.records import Kind, OrderStatus, OrderType
from portfolio_cli.formatting import money, pct, price, qty
from portfolio_cli.render import safe
from portfolio_cli.render.fit import FitTable
from portfolio_cli.services.amend import AmendResult, Levels
from portfolio_cli.services.orders import OrderRow, OrderWhatIf
from portfolio_cli.services.voids import VoidResult, VoidRow


def _levels(levels: Levels) -> str:
    parts = [
        f"stop-loss {price(levels.stop_loss) if levels.stop_loss is not None else 'none'}",
        f"take-profit {price(levels.take_profit) if levels.take_profit is not None else 'none'}",
    ]
    if levels.trailing_pct is not None:
        level = f" at {price(levels.trailing_stop)}" if levels.trailing_stop is not None else ""
        parts.append(f"trailing stop {pct(levels.trailing_pct)}%{level}")
    else:
        parts.append("trailing stop none")
    return ", ".join(parts)


def amend_view(result: AmendResult) -> Group:
    head = Text(
        f"Amended trade {result.trade_id} {result.side} {result.symbol} from {result.at:%Y-%m-%d %H:%M} UTC "
        f"(price {price(result.price)})"
    )
    return Group(head, Text(f"  before: {_levels(result.before)}"), Text(f"  after:  {_levels(result.after)}"))


def order_line(verb: str, o: OrderRow) -> Text:
    kind = "limit" if o.order_type is OrderType.LIMIT else "stop-entry"
    lev = "" if o.kind is Kind.SPOT else f" {o.leverage}x {o.margin_mode}"
    expires = f", expires {o.expires_at:%Y-%m-%d %H:%M} UTC" if o.expires_at else ""
    return Text(
        f"{verb} order {o.id}: {kind} {o.side} {qty(o.qty)} {o.symbol}{lev} at {price(o.price)}, "
        f"reserving {money(o.reserved)} USDT{expires}"
    )


def orders_table(rows: list[OrderRow]) -> Table:
    ended = any(r.status is not OrderStatus.OPEN for r in rows)
    table = FitTable(box=box.SIMPLE_HEAD, drop=("expires", "placed", "reserved"))
    table.add_column("id", justify="right")
    table.add_column("symbol", no_wrap=True)
    table.add_column("type")
    table.add_column("side")
    for name in ("qty", "price", "reserved"):
        table.add_column(name, justify="right")
    table.add_column("placed")
    table.add_column("expires")
    if ended:
        table.add_column("status")
    for r in rows:
        status = (f"{r.status.value}" + (f" (trade {r.trade_id})" if r.trade_id else ""),) if ended else ()
        table.add_row(
            str(r.id),
            safe(r.symbol),
            "limit" if r.order_type is OrderType.LIMIT else "stop-entry",
            r.side.value if r.kind is Kind.SPOT else f"{r.side.value} {r.leverage}x",
            qty(r.qty),
            price(r.price),
            money(r.reserved),
            f"{r.placed_at:%m-%d %H:%M}",
            f"{r.expires_at:%m-%d %H:%M}" if r.expires_at else "",
            *status,
        )
    return table


def order_what_if_view(result: OrderWhatIf) -> Group:
    """The order a dry run would place, the margin it would hold, and its fill were the market there now."""
    from portfolio_cli.render.whatif import what_if_view

    o, fill = result.order, result.at_fill
    kind = "limit" if o.order_type is OrderType.LIMIT else "stop-entry"
    placed = "would be placed" if result.would_place else "would be refused (free margin)"
    tick = fill.price_tick
    heading = Text(f"Dry run: {kind} {o.side} {qty(o.qty)} {o.symbol} at {price(o.price, tick)} {placed}; "
                   "nothing placed", style="bold")  # fmt: skip
    held = Text(
        f"Reserves {money(o.reserved)} USDT while it waits: free margin {money(result.free_margin_before)} → "
        f"{money(result.free_margin_after)} USDT"
    )
    parts: list = [heading, held]
    if result.off_market:
        parts.append(Text(f"Off market: {safe(result.off_market)}"))
    verdict = "would be booked" if fill.would_book else f"would be cancelled ({', '.join(fill.refused_by)})"
    fee = "maker" if o.order_type is OrderType.LIMIT else "taker"
    at_fill = f"At its fill, were the market at {price(o.price, tick)} now ({fee} fee): {verdict}"
    parts.append(what_if_view(fill, at_fill))
    return Group(*parts)


def void_view(result: VoidResult) -> Group:
    """What a void undid (or, a dry run, would undo), and what it rebuilt."""
    kind, record_id = result.record.split(":")
    verb = "Would void" if result.dry_run else f"Voided (void {result.void_id})"
    lines = [
        Text(f"{verb} {kind.replace('margin', 'margin change')} {record_id} of {result.portfolio}: {result.summary}"),
        Text(f"  reason: {result.reason}"),
        Text(f"  out of every figure: {', '.join(result.undone)}"),
        Text(
            f"  wallet {money(result.wallet_before)} → {money(result.wallet_after)} USDT "
            f"(the record's cash flows, {money(result.cash_undone)} USDT, undone)"
        ),
    ]
    would = "would be " if result.dry_run else ""
    if result.stale_days:
        days = result.stale_days
        span = f"{days[0]}" if len(days) == 1 else f"{days[0]} to {days[-1]}"
        lines.append(Text(f"  snapshots {would}rebuilt: {span} ({len(days)})"))
    if result.rewound_to is not None:
        lines.append(
            Text(
                f"  check watermark {would}rewound to {result.rewound_to:%Y-%m-%d %H:%M} UTC: "
                "the next check replays from it"
            )
        )
    return Group(*lines)


def voids_table(rows: list[VoidRow]) -> Table:
    table = FitTable(title="Voided records", box=box.SIMPLE_HEAD, drop=("voided",))
    table.add_column("void", justify="right")
    table.add_column("record", no_wrap=True)
    table.add_column("dated", no_wrap=True)
    table.add_column("voided", no_wrap=True)
    table.add_column("reason", wrap=True, min_width=12)
    table.add_column("what", wrap=True, min_width=28)
    for r in rows:
        table.add_row(
            str(r.void_id), r.record, f"{r.record_at:%Y-%m-%d %H:%M}", f"{r.voided_at:%Y-%m-%d %H:%M}",
            safe(r.reason), safe(r.summary),
        )  # fmt: skip
    return table
