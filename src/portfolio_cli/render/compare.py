"""Comparisons: one column per portfolio or strategy, the best of each row highlighted, one chart of
every curve rebased to 100; the same figures as JSON and CSV."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.text import Text

from portfolio_cli.engine.metrics import Undefined
from portfolio_cli.render import NA, add_numeric_columns, money, safe
from portfolio_cli.render.charts import line_chart
from portfolio_cli.render.fit import FitTable
from portfolio_cli.render.report import Reasons, performance_json, show, trades_json
from portfolio_cli.services.compare import Column, Comparison

HIGHER, LOWER = 1, -1

# label, the value, how to show it, which way is better (None: not ranked).
ROWS: list[tuple[str, Callable[[Column], Any], str, int | None]] = [
    ("total PnL (USDT)", lambda c: c.total_pnl, "money", HIGHER),
    ("total return (TWR)", lambda c: c.performance.total_return, "%", HIGHER),
    ("CAGR", lambda c: c.performance.cagr, "%", HIGHER),
    ("money-weighted return (MWR, a year)", lambda c: c.performance.money_weighted_return, "%", HIGHER),
    ("volatility (annualized)", lambda c: c.performance.volatility, "%", LOWER),
    ("Sharpe", lambda c: c.performance.sharpe, "ratio", HIGHER),
    ("Sortino", lambda c: c.performance.sortino, "ratio", HIGHER),
    ("Calmar", lambda c: c.performance.calmar, "ratio", HIGHER),
    ("max drawdown", lambda c: c.performance.max_drawdown, "%", HIGHER),  # closest to 0
    ("win rate", lambda c: c.trades.win_rate if c.trades else Undefined("no trades"), "%", HIGHER),
    ("profit factor", lambda c: c.trades.profit_factor if c.trades else Undefined("no trades"), "ratio", HIGHER),
    ("closed trades", lambda c: c.trades.count if c.trades else Undefined("no trades"), "int", None),
    ("fees", lambda c: c.fees, "money", LOWER),
    ("funding", lambda c: c.funding, "money", HIGHER),
]


def _best(values: list[Any], better: int | None) -> set[int]:
    """The columns holding the best value of a row (none when fewer than two are comparable)."""
    ranked = [(i, v) for i, v in enumerate(values) if isinstance(v, int | float | Decimal)]
    if better is None or len(ranked) < 2:
        return set()
    top = max(better * v for _, v in ranked)
    return {i for i, v in ranked if better * v == top}


def _cell(value: Any, kind: str) -> str:
    if isinstance(value, Undefined):
        return NA
    return money(value) if kind == "money" else show(value, kind)


def compare_view(comparison: Comparison, width: int) -> RenderableType:
    what = "Strategies" if comparison.by == "strategy" else "Portfolios"
    table = FitTable(
        title=f"{what} compared, {comparison.first_day} to {comparison.last_day} ({comparison.requested})",
        box=box.SIMPLE_HEAD,
        caption="best of each row in bold green · returns are time-weighted unless named otherwise",
    )
    table.add_column("")
    add_numeric_columns(table, *(safe(c.name) for c in comparison.columns))
    for label, get, kind, better in ROWS:
        values = [get(c) for c in comparison.columns]
        best = _best(values, better)
        cells = [Text(_cell(v, kind), style="bold green" if i in best else "") for i, v in enumerate(values)]
        table.add_row(label, *cells)
    days = [d for d, _ in comparison.columns[0].growth]
    series = {c.name: [v for _, v in c.growth] for c in comparison.columns}
    chart = line_chart("Growth of 100 (time-weighted)", days, series, width)
    return Group(table, Text(), chart)


def compare_json(comparison: Comparison) -> dict[str, Any]:
    """Each column's metrics and trade statistics under the same names as ``report --json``."""
    value = Reasons()
    columns = []
    for n, c in enumerate(comparison.columns):
        path = f"columns.{n}"
        columns.append(
            {
                "name": c.name,
                "total_pnl": value(f"{path}.total_pnl", c.total_pnl),
                "metrics": performance_json(c.performance, f"{path}.metrics", value),
                "trades": trades_json(c.trades, f"{path}.trades", value) if c.trades else None,
                "fees": value(f"{path}.fees", c.fees),
                "funding": value(f"{path}.funding", c.funding),
                "growth": [{"day": d.isoformat(), "value": v} for d, v in c.growth],
            }
        )
    return {
        "by": comparison.by,
        "range": {
            "requested": comparison.requested,
            "first_day": comparison.first_day.isoformat(),
            "last_day": comparison.last_day.isoformat(),
        },
        "columns": columns,
        "notes": comparison.notes,
        "undefined": value.why,
    }


def compare_rows(comparison: Comparison) -> Iterator[list[str]]:
    """``metric, column…`` rows: the table's figures, full precision, empty where undefined."""
    yield ["metric", *(c.name for c in comparison.columns)]
    for label, get, _, _ in ROWS:
        yield [label, *("" if isinstance(v, Undefined) else str(v) for v in (get(c) for c in comparison.columns))]
