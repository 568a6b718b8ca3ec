"""The report as rich renderables, as JSON and as CSV rows. An undefined metric shows "n/a"; JSON gives
``null`` and the reason under ``undefined``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from portfolio_cli.engine.history import Every
from portfolio_cli.engine.metrics import Episode, Performance, PeriodReturn, Undefined
from portfolio_cli.engine.trades import BREAKDOWN_KEYS, Breakdown, Contribution, TradeStats
from portfolio_cli.formatting import json_value, moment
from portfolio_cli.render import NA, add_numeric_columns, money, safe, signed
from portfolio_cli.render.charts import line_chart
from portfolio_cli.render.fit import FitTable
from portfolio_cli.services.report import PERIOD_UNITS, Benchmark, Report

# Performance fields: label, and how to show them ("%": a fraction as a percentage).
METRICS: dict[str, tuple[str, str]] = {
    "total_return": ("total return (time-weighted)", "%"),
    "cagr": ("CAGR", "%"),
    "money_weighted_return": ("money-weighted return (XIRR, a year)", "%"),
    "volatility": ("volatility (annualized)", "%"),
    "sharpe": ("Sharpe", "ratio"),
    "sortino": ("Sortino", "ratio"),
    "value_at_risk": ("VaR 95 % (one day)", "%"),
    "conditional_value_at_risk": ("CVaR 95 % (one day)", "%"),
    "skew": ("skew", "ratio"),
    "kurtosis": ("excess kurtosis", "ratio"),
    "calmar": ("Calmar", "ratio"),
    "recovery_factor": ("recovery factor", "ratio"),
    "max_drawdown": ("max drawdown", "%"),
    "max_drawdown_amount": ("max drawdown (USDT)", "usdt"),
    "current_drawdown": ("current drawdown", "%"),
    "days_since_peak": ("days since peak", "days"),
    "longest_drawdown_days": ("longest drawdown (days)", "days"),
}
GRID_WIDTH = 100  # columns a years-by-months grid needs
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def show(value: Any, kind: str) -> str:
    """A metric for a person: percentages and ratios to 2 places, days whole, "n/a" when undefined."""
    if value is None or isinstance(value, Undefined):
        return NA
    if kind == "%":
        return f"{round(value * 100, 2) + 0.0:,.2f} %"  # + 0.0: no "-0.00"
    if kind == "ratio":
        return f"{round(value, 2) + 0.0:,.2f}"
    if kind == "usdt":
        return money(Decimal(repr(value)))
    if kind == "duration":
        return trade_duration(value)
    return str(value)


def period_label(start: date, every: Every) -> str:
    if every is Every.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if every is Every.MONTH:
        return f"{start:%Y-%m}"
    if every is Every.QUARTER:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    if every is Every.YEAR:
        return str(start.year)
    return start.isoformat()


GAP_NOTE = (
    "no snapshot: the return across them counts in total return and TWR, not in volatility, Sharpe, "
    "Sortino, alpha/beta or best/worst day"
)

# terminal


def report_view(report: Report, width: int, charts: bool = True) -> RenderableType:
    """The whole report for a terminal ``width`` columns wide (``charts``: with its line charts)."""
    return Group(*report_parts(report, width, charts))


def report_parts(report: Report, width: int, charts: bool = True) -> list[RenderableType]:
    """The report's parts, top to bottom: its headings and lines (``Text``), then its tables, alone or
    side by side (``Columns``). A paginated rendering keeps each part whole where it can."""
    span = (
        f"{report.first_day} to {report.last_day}, {report.snapshots} daily snapshots"
        if report.first_day
        else "no daily snapshots"
    )
    parts: list[RenderableType] = [
        Text(f"Report for {report.portfolio} · {report.requested} ({span})", style="bold"),
        *(
            [Text(f"Missing days: {' '.join(str(d) for d in report.missing_days)} — {GAP_NOTE}", style="yellow")]
            if report.missing_days
            else []
        ),
        Columns([_summary_table(report), _pnl_table(report)], padding=(0, 4)),
    ]
    if report.periods[Every.MONTH]:
        periods = Columns([_periods_table(report), _trailing_table(report)], padding=(0, 4))
        parts += [_monthly_grid(report, width), periods]
    if report.drawdown_episodes:
        parts.append(_episodes_table(report.drawdown_episodes))
    if len(report.daily) >= 2 and charts:
        parts += _charts(report, width)
    if report.active:
        parts.append(
            Columns(
                [
                    _trades_table(report.trades, report.fees, report.funding, report.exposure),
                    _contribution_table("by strategy", report.attribution.by_strategy),
                    _contribution_table("by asset", report.attribution.by_asset),
                    _contribution_table("long / short", report.attribution.by_side),
                ],
                padding=(0, 4),
            )
        )
        parts.append(
            Columns(
                [_breakdown_table(key, report.breakdowns[key]) for key in BREAKDOWN_KEYS if report.breakdowns[key]],
                padding=(0, 4),
            )
        )
    else:
        parts += [Text(f"No trading activity from {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC")]
        parts.append(_transfers_table(report))
    return parts


def _summary_table(report: Report) -> Table:
    benchmark = report.benchmark if isinstance(report.benchmark, Benchmark) else None
    table = FitTable(title="Performance", box=box.SIMPLE_HEAD)
    table.add_column("metric")
    add_numeric_columns(table, "portfolio")
    if benchmark:
        add_numeric_columns(table, f"{benchmark.symbol.split('/')[0]} buy & hold")
    for name, (label, kind) in METRICS.items():
        ours = show(getattr(report.performance, name), kind)
        theirs = [show(getattr(benchmark.performance, name), kind)] if benchmark else []
        table.add_row(label, ours, *theirs)
    if benchmark:
        table.add_row("end equity", money(report.end_equity), money(benchmark.end_equity))
        for label, value, kind in (
            ("excess return", benchmark.excess_return, "%"),
            ("alpha (annualized)", benchmark.alpha, "%"),
            ("beta", benchmark.beta, "ratio"),
        ):
            table.add_row(label, show(value, kind), "")
    else:
        why = report.benchmark.why if isinstance(report.benchmark, Undefined) else ""
        table.caption = f"benchmark: n/a ({why})"
    rolling = [v for _, v in report.rolling_sharpe if v is not None]
    if rolling:
        table.add_row("30-day Sharpe: latest (min … max)", f"{show(rolling[-1], 'ratio')} ({_range(rolling, 'ratio')})")
    drawdowns = [v for _, v in report.rolling_max_drawdown]
    if drawdowns:
        table.add_row(
            "90-day max drawdown: latest (worst)", f"{show(drawdowns[-1], '%')} ({show(min(drawdowns), '%')})"
        )
    return table


def _range(values: list[float], kind: str) -> str:
    return f"{show(min(values), kind)} … {show(max(values), kind)}"


def _pnl_table(report: Report) -> Table:
    table = FitTable(title="PnL (USDT)", box=box.SIMPLE_HEAD)
    table.add_column("")
    add_numeric_columns(table, "amount")
    table.add_row("start equity", money(report.start_equity))
    table.add_row("deposits", money(report.deposits))
    table.add_row("withdrawals", money(report.withdrawals))
    table.add_row("end equity", money(report.end_equity))
    table.add_row("realized PnL (gross)", signed(report.realized_pnl))
    table.add_row("fees", signed(-report.fees))
    table.add_row("funding", signed(report.funding))
    table.add_row("unrealized PnL change", signed(report.unrealized_change))
    table.add_row(Text("total PnL", style="bold"), signed(report.total_pnl))
    table.add_row("unrealized PnL open at the end", signed(report.unrealized_pnl))
    return table


def _monthly_grid(report: Report, width: int) -> Table:
    """Years by months, coloured by sign and size; on a narrow terminal, months by years."""
    months = {(p.start.year, p.start.month): p.value for p in report.periods[Every.MONTH]}
    years = {p.start.year: p.value for p in report.periods[Every.YEAR]}
    shown = sorted({y for y, _ in months})
    table = FitTable(title="Monthly returns (%)", box=box.SIMPLE_HEAD)
    if width >= GRID_WIDTH:
        table.add_column("year")
        add_numeric_columns(table, *MONTHS, "year")
        for year in shown:
            cells = [_heat(months.get((year, m))) for m in range(1, 13)]
            table.add_row(str(year), *cells, _heat(years.get(year)))
        return table
    table.add_column("month")
    add_numeric_columns(table, *map(str, shown))
    for m, name in enumerate(MONTHS, start=1):
        table.add_row(name, *(_heat(months.get((year, m))) for year in shown))
    table.add_section()
    table.add_row("year", *(_heat(years.get(year)) for year in shown))
    return table


def _heat(value: float | None) -> Text:
    """A return coloured by its sign and size: brighter for bigger moves."""
    if value is None:
        return Text("")
    shown = f"{round(value * 100, 1) + 0.0:.1f}"
    if round(value * 100, 1) == 0:
        return Text(shown)
    colour = "green" if value > 0 else "red"
    size = abs(value)
    style = f"bold {colour}" if size >= 0.10 else colour if size >= 0.02 else f"dim {colour}"
    return Text(shown, style=style)


def _periods_table(report: Report) -> Table:
    table = FitTable(title="Returns by period", box=box.SIMPLE_HEAD)
    table.add_column("period")
    add_numeric_columns(table, "count", "positive")
    table.add_column("best", justify="right")
    table.add_column("worst", justify="right")
    for every in PERIOD_UNITS:
        returns = report.periods[every]
        extremes = report.best_and_worst(every)
        if not returns or extremes is None:
            continue
        best, worst = extremes
        positive = sum(p.value > 0 for p in returns)
        table.add_row(every.value, str(len(returns)), f"{positive}", _extreme(best, every), _extreme(worst, every))
    return table


TRAILING = {"1m": "1 month", "3m": "3 months", "6m": "6 months", "ytd": "year to date", "1y": "1 year"}
TRAILING_LABELS = {**TRAILING, "inception": "since inception"}


def _trailing_table(report: Report) -> Table:
    table = FitTable(title="Trailing returns", box=box.SIMPLE_HEAD)
    table.add_column("to the last day")
    add_numeric_columns(table, "return")
    for name, label in TRAILING_LABELS.items():
        table.add_row(label, show(report.trailing[name], "%"))
    return table


def _episodes_table(episodes: list[Episode]) -> Table:
    table = FitTable(title="Deepest drawdowns", box=box.SIMPLE_HEAD, drop=("amount",))
    for header in ("peak", "trough", "recovered"):
        table.add_column(header, no_wrap=True)
    add_numeric_columns(table, "depth", "amount", "to trough", "to recover")
    for e in episodes:
        table.add_row(
            e.peak.isoformat(),
            e.trough.isoformat(),
            e.recovery.isoformat() if e.recovery else "not recovered",
            show(e.depth, "%"),
            money(Decimal(repr(e.amount))),
            f"{e.days_to_trough} d",
            NA if e.days_to_recover is None else f"{e.days_to_recover} d",
        )
    table.caption = "days from the peak to the trough, and from the trough back to the peak"
    return table


BREAKDOWN_TITLES = {"symbol": "symbol", "strategy": "strategy", "side": "side", "exit_reason": "exit reason"}


def _breakdown_table(key: str, rows: list[Breakdown]) -> Table:
    table = FitTable(title=f"Closed trades by {BREAKDOWN_TITLES[key]}", box=box.SIMPLE_HEAD, drop=("avg held",))
    table.add_column("", wrap=True)
    add_numeric_columns(table, "trades", "win %", "net PnL", "PF", "avg held")
    for row in rows:
        table.add_row(
            safe(row.name),
            str(row.count),
            f"{round(row.win_rate * 100, 1):.1f}",
            signed(row.net_pnl),
            show(row.profit_factor, "ratio"),
            trade_duration(row.average_holding),
        )
    return table


def _extreme(period: PeriodReturn, every: Every) -> Text:
    return Text(
        f"{show(period.value, '%')}  {period_label(period.start, every)}",
        style="green" if period.value > 0 else "red" if period.value < 0 else "",
    )


def _charts(report: Report, width: int) -> list[RenderableType]:
    days = [row.day for row in report.daily]
    series = {"portfolio": [float(r.equity) for r in report.daily]}
    if isinstance(report.benchmark, Benchmark):
        series[f"{report.benchmark.symbol.split('/')[0]} buy & hold"] = [
            float(d.equity) for d in report.benchmark.daily
        ]
    equity = line_chart("Equity (USDT)", days, series, width)
    drawdown = line_chart("Drawdown (%)", days, {"drawdown": [r.drawdown_pct for r in report.daily]}, width)
    return [Text(), equity, Text(), drawdown]


TRADE_ROWS: dict[str, tuple[str, str]] = {
    "count": ("closed trades", "int"),
    "win_rate": ("win rate", "%"),
    "average_win": ("average win", "money"),
    "average_loss": ("average loss", "money"),
    "profit_factor": ("profit factor", "ratio"),
    "payoff_ratio": ("payoff ratio", "ratio"),
    "breakevens": ("breakeven trades", "int"),
    "expectancy": ("expectancy", "money"),
    "largest_win": ("largest win", "money"),
    "largest_loss": ("largest loss", "money"),
    "current_wins": ("current winning streak", "int"),
    "current_losses": ("current losing streak", "int"),
    "max_consecutive_wins": ("most wins in a row", "int"),
    "max_consecutive_losses": ("most losses in a row", "int"),
    "average_duration": ("average duration", "duration"),
}


def _trades_table(stats: TradeStats, fees: Decimal, funding: Decimal, exposure: Any) -> Table:
    table = FitTable(title="Closed trades (net PnL)", box=box.SIMPLE_HEAD)
    table.add_column("")
    add_numeric_columns(table, "value")
    for name, (label, kind) in TRADE_ROWS.items():
        value = getattr(stats, name)
        if kind == "money" and isinstance(value, Decimal):
            table.add_row(label, signed(value))
        else:
            table.add_row(label, show(value, kind))
    table.add_row("fees paid", money(fees))
    table.add_row("funding", signed(funding))
    _exposure_row(table, exposure)
    return table


def _exposure_row(table: Table, exposure: Any) -> None:
    table.add_row("time with a position open", show(exposure, "%"))


def _contribution_table(title: str, rows: list[Contribution]) -> Table:
    table = FitTable(title=f"PnL {title}", box=box.SIMPLE_HEAD)
    table.add_column("")
    add_numeric_columns(table, "trades", "PnL")
    for row in rows:
        table.add_row(safe(row.name), str(row.trades), signed(row.pnl))
    return table


def _transfers_table(report: Report) -> Table:
    table = FitTable(title="Cash flows", box=box.SIMPLE_HEAD)
    table.add_column("time", no_wrap=True)
    table.add_column("kind")
    add_numeric_columns(table, "amount")
    for flow in report.transfers:
        table.add_row(f"{moment(flow.at)}", flow.kind.value, signed(flow.amount))
    if not report.transfers:
        table.caption = "none in the range"
    return table


def trade_duration(value: timedelta) -> str:
    hours = value.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"


# JSON and CSV


class Reasons:
    """Collects why each undefined value is undefined, by its dotted path."""

    def __init__(self) -> None:
        self.why: dict[str, str] = {}

    def __call__(self, path: str, value: Any) -> Any:
        if isinstance(value, Undefined):
            self.why[path] = value.why
            return None
        if isinstance(value, Decimal):
            return fixed(value)
        if isinstance(value, timedelta):
            return value.total_seconds()
        return value


def performance_json(perf: Performance, path: str, value: Reasons) -> dict[str, Any]:
    return {f.name: value(f"{path}.{f.name}", getattr(perf, f.name)) for f in fields(perf)}


def trades_json(stats: TradeStats, path: str, value: Reasons) -> dict[str, Any]:
    trades = {f.name: value(f"{path}.{f.name}", getattr(stats, f.name)) for f in fields(stats)}
    trades["average_duration_seconds"] = trades.pop("average_duration")
    if f"{path}.average_duration" in value.why:
        value.why[f"{path}.average_duration_seconds"] = value.why.pop(f"{path}.average_duration")
    return trades


def report_json(report: Report) -> dict[str, Any]:
    """The whole report as plain JSON: money as strings, returns as fractions (0.05 is 5 %)."""
    value = Reasons()
    benchmark: dict[str, Any] | None = None
    if isinstance(report.benchmark, Benchmark):
        b = report.benchmark
        benchmark = {
            "symbol": b.symbol,
            "start_equity": fixed(b.start_equity),
            "end_equity": fixed(b.end_equity),
            "metrics": performance_json(b.performance, "benchmark.metrics", value),
            "excess_return": value("benchmark.excess_return", b.excess_return),
            "alpha": value("benchmark.alpha", b.alpha),
            "beta": value("benchmark.beta", b.beta),
        }
    else:
        value("benchmark", report.benchmark)
    trades = trades_json(report.trades, "trades", value)
    periods = {}
    for every in PERIOD_UNITS:
        extremes = report.best_and_worst(every)
        entry: dict[str, Any] = {
            "best": _period_json(extremes[0], every) if extremes else None,
            "worst": _period_json(extremes[1], every) if extremes else None,
        }
        if every is not Every.DAY:
            entry["returns"] = [_period_json(p, every) for p in report.periods[every]]
        periods[every.value] = entry
    return {
        "portfolio": report.portfolio,
        "range": {
            "requested": report.requested,
            "first_day": _iso(report.first_day),
            "last_day": _iso(report.last_day),
            "start": report.start,
            "end": report.end,
            "daily_snapshots": report.snapshots,
            "missing_days": [d.isoformat() for d in report.missing_days],
        },
        "equity": {
            "start": _str(report.start_equity),
            "end": _str(report.end_equity),
            "deposits": fixed(report.deposits),
            "withdrawals": fixed(report.withdrawals),
        },
        "pnl": {
            "realized": fixed(report.realized_pnl),
            "fees": fixed(report.fees),
            "funding": fixed(report.funding),
            "unrealized_change": fixed(report.unrealized_change),
            "unrealized_open": fixed(report.unrealized_pnl),
            "total": fixed(report.total_pnl),
        },
        "metrics": performance_json(report.performance, "metrics", value),
        "rolling": {
            "sharpe_30d": [{"day": d.isoformat(), "value": v} for d, v in report.rolling_sharpe],
            "max_drawdown_90d": [{"day": d.isoformat(), "value": v} for d, v in report.rolling_max_drawdown],
        },
        "periods": periods,
        "trailing_returns": {name: value(f"trailing_returns.{name}", v) for name, v in report.trailing.items()},
        "drawdowns": [_episode_json(e) for e in report.drawdown_episodes],
        "trading_activity": report.active,
        "trades": trades,
        "exposure_time": value("exposure_time", report.exposure),
        "breakdowns": {
            key: [_breakdown_json(row, f"breakdowns.{key}.{i}", value) for i, row in enumerate(rows)]
            for key, rows in report.breakdowns.items()
        },
        "attribution": {
            "strategy": _contributions(report.attribution.by_strategy),
            "asset": _contributions(report.attribution.by_asset),
            "side": _contributions(report.attribution.by_side),
        },
        "benchmark": benchmark,
        "cash_flows": [{"at": f.at, "kind": f.kind.value, "amount": fixed(f.amount)} for f in report.transfers],
        "notes": report.notes,
        "undefined": value.why,
    }


def report_rows(report: Report) -> Iterator[list[str]]:
    """The report as ``section, name, value, note`` rows: every table of the report in one long
    format (the scalar figures, trailing returns, each period's return and its best and worst, the
    rolling series, the drawdown episodes, the trade breakdowns, the attribution, the benchmark, the
    cash flows and the notes). ``note`` says why a value is empty, or what the row is about."""
    payload = report_json(report)
    why = payload["undefined"]
    yield ["section", "name", "value", "note"]
    for section in ("range", "equity", "pnl", "metrics", "trades"):
        for name, item in payload[section].items():
            gap = GAP_NOTE if (section, name) == ("range", "missing_days") and item else ""
            yield [section, name, _cell(item), why.get(f"{section}.{name}", gap)]
    yield ["trades", "exposure_time", _cell(payload["exposure_time"]), why.get("exposure_time", "")]
    for name, item in payload["trailing_returns"].items():
        yield ["trailing return", name, _cell(item), why.get(f"trailing_returns.{name}", "")]
    for every, entry in payload["periods"].items():
        for extreme in ("best", "worst"):
            if entry[extreme] is not None:
                yield [f"{extreme} {every}", entry[extreme]["period"], _cell(entry[extreme]["return"]), ""]
        for period in entry.get("returns", []):
            yield [f"{every} return", period["period"], _cell(period["return"]), ""]
    for key, series in payload["rolling"].items():
        for point in series:
            yield [f"rolling {key}", point["day"], _cell(point["value"]), ""]
    for rank, episode in enumerate(payload["drawdowns"], start=1):
        for name, item in episode.items():
            note = "not recovered" if name == "recovery" and item is None else ""
            yield [f"drawdown {rank}", name, _cell(item), note]
    for key, rows in payload["breakdowns"].items():
        for i, row in enumerate(rows):
            for name, item in row.items():
                if name != "name":
                    note = why.get(f"breakdowns.{key}.{i}.{name}", "")
                    yield [f"trades by {key}: {row['name']}", name, _cell(item), note]
    for key, rows in payload["attribution"].items():
        for row in rows:
            yield [f"pnl by {key}", row["name"], row["pnl"], f"{row['trades']} trades"]
    yield from _benchmark_rows(payload["benchmark"], why)
    for flow in payload["cash_flows"]:
        yield ["cash flow", flow["at"].isoformat(), flow["amount"], flow["kind"]]
    for note in payload["notes"]:
        yield ["note", "", note, ""]


def _benchmark_rows(benchmark: dict[str, Any] | None, why: dict[str, str]) -> Iterator[list[str]]:
    if benchmark is None:
        yield ["benchmark", "", "", why.get("benchmark", "")]
        return
    for name, item in benchmark["metrics"].items():
        yield ["benchmark", name, _cell(item), why.get(f"benchmark.metrics.{name}", "")]
    for name in ("end_equity", "excess_return", "alpha", "beta"):
        yield ["benchmark", name, _cell(benchmark[name]), why.get(f"benchmark.{name}", "")]


def _episode_json(e: Episode) -> dict[str, Any]:
    return {
        "peak": e.peak.isoformat(),
        "trough": e.trough.isoformat(),
        "recovery": _iso(e.recovery),
        "depth": e.depth,
        "amount": e.amount,
        "days_to_trough": e.days_to_trough,
        "days_to_recover": e.days_to_recover,
        "length_days": e.length_days,
    }


def _breakdown_json(row: Breakdown, path: str, value: Reasons) -> dict[str, Any]:
    return {
        "name": row.name,
        "count": row.count,
        "win_rate": row.win_rate,
        "net_pnl": fixed(row.net_pnl),
        "profit_factor": value(f"{path}.profit_factor", row.profit_factor),
        "average_holding_seconds": row.average_holding.total_seconds(),
    }


def _period_json(period: PeriodReturn, every: Every) -> dict[str, Any]:
    return {"period": period_label(period.start, every), "start": period.start.isoformat(), "return": period.value}


def _contributions(rows: list[Contribution]) -> list[dict[str, Any]]:
    return [{"name": r.name, "trades": r.trades, "pnl": fixed(r.pnl)} for r in rows]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Decimal):
        return fixed(value)
    return str(value)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def fixed(value: Decimal) -> str:
    """A decimal in JSON and CSV: fixed point, exact (``0.00000000``, never ``0E-8``)."""
    return str(json_value(value))


def _str(value: Decimal | None) -> str | None:
    return None if value is None else fixed(value)
