"""Allocation, rebalance plans and their log: rich tables, and the same as plain JSON."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from portfolio_cli.engine.metrics import Undefined
from portfolio_cli.engine.rebalance import CASH, Plan, Weight
from portfolio_cli.engine.records import RebalanceEvent
from portfolio_cli.formatting import moment
from portfolio_cli.render import NA, add_numeric_columns, money, number, pct, price, safe
from portfolio_cli.render.fit import FitTable
from portfolio_cli.services.allocation import Allocation, GroupRow
from portfolio_cli.services.rebalance import Rebalance


def _drift(value: Decimal | None, outside: bool) -> Text:
    if value is None:
        return Text("")
    return Text(f"{value:+.2f}", style="bold red" if outside else "")


def allocation_view(a: Allocation) -> RenderableType:
    table = FitTable(title=f"Allocation of {safe(a.portfolio)} · equity {money(a.equity)} USDT", box=box.SIMPLE_HEAD)
    shorts = any(row.short for row in a.assets)
    table.add_column("asset", no_wrap=True)
    add_numeric_columns(table, *(("long", "short") if shorts else ()), "net", "weight", "target", "drift")
    for row in a.assets:
        sides = (money(row.long) if row.long else "", money(row.short) if row.short else "") if shorts else ()
        table.add_row(
            safe(row.asset),
            *sides,
            money(row.net),
            pct(row.weight_pct),
            pct(row.target),
            _drift(row.drift, row.outside),
        )
    if a.margin_used:
        table.add_row(
            "margin in use", *([""] * (2 if shorts else 0)), money(a.margin_used), pct(a.margin_used / a.equity * 100)
        )
    notes = [f"USDT · weights in % of equity · cash ({CASH}) is the free margin"]
    if a.band is not None:
        notes.append(f"band ±{a.band} percentage points; drift in red is outside it")
    table.caption = " · ".join(notes)
    parts: list[RenderableType] = [
        table,
        Columns(
            [_group_table("By class", a.classes), _group_table("By sector", a.sectors), _exposure(a)], padding=(0, 4)
        ),
    ]
    return Group(*parts)


def _group_table(title: str, rows: list[GroupRow]) -> Table:
    table = FitTable(title=title, box=box.SIMPLE_HEAD)
    table.add_column("")
    add_numeric_columns(table, "net", "weight %")
    for row in rows:
        table.add_row(safe(row.name), money(row.net), pct(row.weight_pct))
    return table


def _exposure(a: Allocation) -> Table:
    table = FitTable(title="Exposure and concentration", box=box.SIMPLE_HEAD)
    table.add_column("")
    add_numeric_columns(table, "value")
    share = (lambda v: f" ({pct(v / a.equity * 100)} %)") if a.equity > 0 else (lambda v: "")
    table.add_row("long", f"{money(a.long)}{share(a.long)}")
    table.add_row("short", f"{money(a.short)}{share(a.short)}")
    table.add_row("net", f"{money(a.net)}{share(a.net)}")
    c = a.concentration
    largest = f"{safe(c.largest_asset)} {pct(c.largest_weight_pct)} %" if c.largest_asset else NA
    table.add_row("largest single weight", largest)
    table.add_row("Herfindahl index", f"{c.herfindahl:.4f}" if c.herfindahl is not None else NA)
    table.add_row("effective number of assets", f"{c.effective_assets:.2f}" if c.effective_assets else NA)
    if isinstance(a.correlated, Undefined):
        table.add_row("correlated groups", f"n/a ({safe(a.correlated.why)})")
    elif not a.correlated:
        table.add_row("correlated groups", "none")
    for group in a.correlated if isinstance(a.correlated, list) else []:
        table.add_row(f"correlated: {safe(', '.join(group.assets))}", f"{pct(group.weight_pct)} %")
    return table


def allocation_json(a: Allocation) -> dict[str, Any]:
    correlated = (
        {"undefined": a.correlated.why}
        if isinstance(a.correlated, Undefined)
        else [{"assets": list(g.assets), "net": str(g.net), "weight_pct": _text(g.weight_pct)} for g in a.correlated]
    )
    c = a.concentration
    return {
        "portfolio": a.portfolio,
        "as_of": a.as_of,
        "equity": str(a.equity),
        "assets": [
            {
                "asset": r.asset,
                "class": r.asset_class,
                "sector": r.sector or None,
                "long": str(r.long),
                "short": str(r.short),
                "net": str(r.net),
                "weight_pct": _text(r.weight_pct),
                "target_pct": _text(r.target),
                "drift_pct": _text(r.drift),
                "outside_band": r.outside,
            }
            for r in a.assets
        ],
        "margin_used": str(a.margin_used),
        "classes": [{"name": g.name, "net": str(g.net), "weight_pct": _text(g.weight_pct)} for g in a.classes],
        "sectors": [{"name": g.name, "net": str(g.net), "weight_pct": _text(g.weight_pct)} for g in a.sectors],
        "exposure": {"long": str(a.long), "short": str(a.short), "net": str(a.net)},
        "concentration": {
            "largest_asset": c.largest_asset,
            "largest_weight_pct": _text(c.largest_weight_pct),
            "herfindahl": _text(c.herfindahl),
        },
        "correlated_groups": correlated,
        "band_pct": _text(a.band),
        "notes": a.notes,
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# rebalance


def plan_view(r: Rebalance) -> RenderableType:
    p = r.plan
    parts: list[RenderableType] = [
        Text(f"Rebalance plan for {r.portfolio} ({r.strategy}, {r.mode}) · {'due' if r.due else 'not due'}: {r.why}")
    ]
    if p.trades:
        table = FitTable(title="Trades (sells first)", box=box.SIMPLE_HEAD)
        table.add_column("side")
        table.add_column("pair")
        add_numeric_columns(table, "qty", "price", "notional", "fee")
        for t in p.trades:
            side = Text("buy", style="green") if t.buy else Text("sell", style="red")
            table.add_row(side, t.symbol, number(t.qty), price(t.price), money(t.notional), money(t.fee, 4))
        parts.append(table)
    else:
        parts.append(Text("No trades: " + ("nothing to do" if not p.skipped else "none that can be booked")))
    if p.skipped:
        skipped = FitTable(title="Left as they are", box=box.SIMPLE_HEAD)
        skipped.add_column("asset")
        skipped.add_column("why", wrap=True)
        for s in p.skipped:
            skipped.add_row(safe(s.asset), safe(s.reason))
        parts.append(skipped)
    parts.append(_weights_table(p))
    efficiency = p.efficiency
    parts.append(
        Text(
            f"turnover {money(p.turnover)} USDT · fees {money(p.fees, 4)} · slippage {money(p.slippage, 4)} · "
            f"drift {p.drift_before:.2f} → {p.drift_after:.2f} percentage points · efficiency (after ÷ before) "
            f"{NA if isinstance(efficiency, Undefined) else f'{efficiency:.3f}'}"
        )
    )
    if r.executed is not None:
        parts.append(Text(f"Booked as rebalance {r.executed}: {len(p.trades)} trade(s)", style="bold"))
    return Group(*parts)


def _weights_table(p: Plan) -> Table:
    table = FitTable(title="Allocation before and after (% of equity)", box=box.SIMPLE_HEAD)
    table.add_column("asset")
    add_numeric_columns(table, "target", "band", "before", "after")
    for before, after in zip(p.before, p.after, strict=True):
        table.add_row(
            safe(before.asset),
            pct(before.target),
            f"±{before.band}",
            _weight(before),
            _weight(after),
        )
    return table


def _weight(w: Weight) -> Text:
    return Text(pct(w.weight_pct), style="bold red" if w.outside else "")


def plan_json(r: Rebalance) -> dict[str, Any]:
    p = r.plan
    efficiency = p.efficiency
    return {
        "portfolio": r.portfolio,
        "at": r.at,
        "strategy": r.strategy,
        "mode": r.mode,
        "due": r.due,
        "why": r.why,
        "too_soon": r.too_soon,
        "executed": r.executed,
        "trades": [
            {
                "side": "buy" if t.buy else "sell",
                "symbol": t.symbol,
                "qty": str(t.qty),
                "price": str(t.price),
                "notional": str(t.notional),
                "fee": str(t.fee),
                "slippage": str(t.slippage),
            }
            for t in p.trades
        ],
        "skipped": [{"asset": s.asset, "reason": s.reason} for s in p.skipped],
        "before": [_weight_json(w) for w in p.before],
        "after": [_weight_json(w) for w in p.after],
        "turnover": str(p.turnover),
        "fees": str(p.fees),
        "slippage": str(p.slippage),
        "cash_after": str(p.cash_after),
        "equity_after": str(p.equity_after),
        "drift_before": str(p.drift_before),
        "drift_after": str(p.drift_after),
        "efficiency": None if isinstance(efficiency, Undefined) else efficiency,
        "undefined": {"efficiency": efficiency.why} if isinstance(efficiency, Undefined) else {},
    }


def _weight_json(w: Weight) -> dict[str, Any]:
    return {"asset": w.asset, "target_pct": _text(w.target), "weight_pct": str(w.weight_pct), "outside_band": w.outside}


def log_view(portfolio: str, events: list[RebalanceEvent]) -> RenderableType:
    if not events:
        return Text(f"No rebalances of {portfolio} yet")
    table = FitTable(title=f"Rebalances of {safe(portfolio)}", box=box.SIMPLE_HEAD)
    add_numeric_columns(table, "id")
    table.add_column("time", no_wrap=True)
    table.add_column("strategy", wrap=True)
    table.add_column("mode")
    add_numeric_columns(table, "trades", "fees", "drift before", "drift after")
    table.add_column("forced")
    for e in events:
        table.add_row(
            str(e.id),
            f"{moment(e.at)}",
            e.strategy,
            e.mode,
            str(len(e.trades)),
            money(e.fees, 4),
            f"{e.drift_before:.2f}",
            f"{e.drift_after:.2f}",
            "yes" if e.forced else "",
        )
    return table


def log_json(events: list[RebalanceEvent]) -> list[dict[str, Any]]:
    def weights(rows):
        return [{"asset": a, "target_pct": _text(t), "weight_pct": str(w)} for a, t, w in rows]

    return [
        {
            "id": e.id,
            "at": e.at,
            "strategy": e.strategy,
            "mode": e.mode,
            "forced": e.forced,
            "drift_before": str(e.drift_before),
            "drift_after": str(e.drift_after),
            "fees": str(e.fees),
            "before": weights(e.before),
            "after": weights(e.after),
            "trades": list(e.trades),
        }
        for e in events
    ]
