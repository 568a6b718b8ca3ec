"""The report as one self-contained HTML file: tables as HTML, charts as PNG images drawn by matplotlib
and embedded as data URIs, so the file can be opened anywhere or sent on."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING, Any

from portfolio_cli import __version__
from portfolio_cli.engine.history import Every
from portfolio_cli.engine.metrics import PeriodReturn, Undefined
from portfolio_cli.engine.trades import BREAKDOWN_KEYS
from portfolio_cli.render import money
from portfolio_cli.render.report import (
    BREAKDOWN_TITLES,
    METRICS,
    MONTHS,
    PERIOD_UNITS,
    TRADE_ROWS,
    TRAILING_LABELS,
    period_label,
    show,
    trade_duration,
)
from portfolio_cli.services.report import Benchmark, Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PORTFOLIO_COLOUR = "#1f6feb"
BENCHMARK_COLOUR = "#f59f00"
DRAWDOWN_COLOUR = "#d62728"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #1d2330; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.sub { color: #5b6576; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 1.5em 0.5em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e3e6ec; }
th { text-align: left; background: #f4f6fa; } td.n { text-align: right; }
.pos { color: #137333; } .neg { color: #b3261e; } .na { color: #8a93a3; }
.row { display: flex; flex-wrap: wrap; align-items: flex-start; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.note { color: #8a5a00; }
"""


def report_html(report: Report) -> str:
    """The whole report as one HTML page (user-given names are escaped)."""
    title = f"Report for {report.portfolio}"
    span = f"{report.first_day} to {report.last_day}" if report.first_day else "no daily snapshots"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">{escape(report.requested)} · {span} · {report.snapshots} daily snapshots · '
        f"generated {generated} by portfolio-cli {__version__}</p>",
        *(f'<p class="note">{escape(note)}</p>' for note in report.notes),
        '<div class="row">',
        _performance_table(report),
        _pnl_table(report),
        "</div>",
    ]
    if len(report.daily) >= 2:
        body += ["<h2>Equity and drawdown</h2>", _image(_equity_chart(report)), _image(_drawdown_chart(report))]
    if report.periods[Every.MONTH]:
        body += ["<h2>Monthly returns</h2>", _monthly_grid(report), "<h2>Returns by period</h2>", _periods(report)]
    if report.snapshots >= 2:
        trailing = [[label, _metric(report.trailing[name], "%")] for name, label in TRAILING_LABELS.items()]
        body += ["<h2>Trailing returns</h2>", _table(["to the last day", "return"], trailing)]
    if report.drawdown_episodes:
        body += ["<h2>Deepest drawdowns</h2>", _episodes(report)]
    rolling = _rolling_chart(report)
    body.append("<h2>Rolling risk</h2>")
    body.append(_image(rolling) if rolling else '<p class="na">n/a: fewer than 31 daily returns in the range</p>')
    if report.active:
        body += ['<h2>Trades and attribution</h2><div class="row">', _trades(report)]
        for heading, rows in (
            ("strategy", report.attribution.by_strategy),
            ("asset", report.attribution.by_asset),
            ("side", report.attribution.by_side),
        ):
            body.append(_table(["PnL by " + heading, "trades", "PnL"], ([r.name, r.trades, r.pnl] for r in rows)))
        body.append('</div><div class="row">')
        for key in BREAKDOWN_KEYS:
            if report.breakdowns[key]:
                body.append(_breakdown(key, report))
        body.append("</div>")
    else:
        body.append(f"<h2>No trading activity</h2>{_transfers(report)}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


# tables


def _cell(value: Any) -> str:
    if isinstance(value, Decimal):
        css = "pos" if value > 0 else "neg" if value < 0 else ""
        return f'<td class="n {css}">{money(value)}</td>'
    if isinstance(value, int):
        return f'<td class="n">{value}</td>'
    if isinstance(value, Markup):
        return f'<td class="n {value.css}">{value.text}</td>'
    return f"<td>{escape(str(value))}</td>"


class Markup:
    """A cell already formatted, with an optional class."""

    def __init__(self, text: str, css: str = "") -> None:
        self.text, self.css = escape(text), css


def _plain(value: Decimal | None) -> Markup:
    """An amount shown without the gain/loss colour (equity, deposits, fees paid)."""
    return Markup(money(value), "na" if value is None else "")


def _metric(value: Any, kind: str) -> Markup:
    if isinstance(value, Undefined):
        return Markup("n/a", "na")
    return Markup(show(value, kind))


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _performance_table(report: Report) -> str:
    benchmark = report.benchmark if isinstance(report.benchmark, Benchmark) else None
    header = ["metric", "portfolio"] + ([f"{benchmark.symbol.split('/')[0]} buy & hold"] if benchmark else [])
    rows = []
    for name, (label, kind) in METRICS.items():
        row = [label, _metric(getattr(report.performance, name), kind)]
        if benchmark:
            row.append(_metric(getattr(benchmark.performance, name), kind))
        rows.append(row)
    if benchmark:
        rows += [
            ["excess return", _metric(benchmark.excess_return, "%"), ""],
            ["alpha (annualized)", _metric(benchmark.alpha, "%"), ""],
            ["beta", _metric(benchmark.beta, "ratio"), ""],
        ]
    table = _table(header, rows)
    if isinstance(report.benchmark, Undefined):
        table += f'<p class="na">benchmark: n/a ({escape(report.benchmark.why)})</p>'
    return f"<div>{table}</div>"


def _pnl_table(report: Report) -> str:
    rows = [
        ["start equity", _plain(report.start_equity)],
        ["deposits", _plain(report.deposits)],
        ["withdrawals", _plain(report.withdrawals)],
        ["end equity", _plain(report.end_equity)],
        ["realized PnL (gross)", report.realized_pnl],
        ["fees", -report.fees],
        ["funding", report.funding],
        ["unrealized PnL change", report.unrealized_change],
        ["total PnL", report.total_pnl],
        ["unrealized PnL open at the end", report.unrealized_pnl],
    ]
    return _table(["PnL (USDT)", "amount"], rows)


def _monthly_grid(report: Report) -> str:
    months = {(p.start.year, p.start.month): p.value for p in report.periods[Every.MONTH]}
    years = {p.start.year: p.value for p in report.periods[Every.YEAR]}
    head = "".join(f"<th>{m}</th>" for m in ("year", *MONTHS, "year"))
    rows = []
    for year in sorted({y for y, _ in months}):
        cells = [_heat(months.get((year, m))) for m in range(1, 13)]
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}{_heat(years.get(year))}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _heat(value: float | None) -> str:
    """A cell shaded green or red, deeper for bigger moves (full at ±20 %)."""
    if value is None:
        return "<td></td>"
    strength = min(abs(value) / 0.20, 1.0)
    rgb = (19, 115, 51) if value > 0 else (179, 38, 30)
    return (
        f'<td class="n" style="background: rgba({rgb[0]}, {rgb[1]}, {rgb[2]}, {0.12 + 0.6 * strength:.2f})">'
        f"{value * 100:.1f}</td>"
    )


def _periods(report: Report) -> str:
    rows = []
    for every in PERIOD_UNITS:
        extremes = report.best_and_worst(every)
        if extremes is None:
            continue
        best, worst = extremes
        rows.append(
            [
                every.value,
                len(report.periods[every]),
                sum(p.value > 0 for p in report.periods[every]),
                _extreme(best, every),
                _extreme(worst, every),
            ]
        )
    return _table(["period", "count", "positive", "best", "worst"], rows)


def _extreme(period: PeriodReturn, every: Every) -> Markup:
    css = "pos" if period.value > 0 else "neg" if period.value < 0 else ""
    return Markup(f"{show(period.value, '%')} {period_label(period.start, every)}", css)


def _trades(report: Report) -> str:
    rows = []
    for name, (label, kind) in TRADE_ROWS.items():
        value = getattr(report.trades, name)
        rows.append([label, value if isinstance(value, Decimal | int) else _metric(value, kind)])
    rows += [["fees paid", _plain(report.fees)], ["funding", report.funding]]
    rows.append(["time with a position open", _metric(report.exposure, "%")])
    return _table(["closed trades (net PnL)", "value"], rows)


def _episodes(report: Report) -> str:
    rows = [
        [
            e.peak.isoformat(),
            e.trough.isoformat(),
            e.recovery.isoformat() if e.recovery else Markup("not recovered", "na"),
            _metric(e.depth, "%"),
            _plain(Decimal(repr(e.amount))),
            e.days_to_trough,
            Markup("n/a", "na") if e.days_to_recover is None else e.days_to_recover,
            e.length_days,
        ]
        for e in report.drawdown_episodes
    ]
    header = ["peak", "trough", "recovered", "depth", "amount (USDT)", "days to trough", "days to recover", "length"]
    return _table(header, rows)


def _breakdown(key: str, report: Report) -> str:
    rows = [
        [b.name, b.count, Markup(f"{b.win_rate * 100:.1f} %"), b.net_pnl, _metric(b.profit_factor, "ratio"),
         Markup(trade_duration(b.average_holding))]
        for b in report.breakdowns[key]
    ]  # fmt: skip
    header = [f"trades by {BREAKDOWN_TITLES[key]}", "trades", "win rate", "net PnL", "profit factor", "avg held"]
    return _table(header, rows)


def _transfers(report: Report) -> str:
    rows = [[f"{f.at:%Y-%m-%d %H:%M}", f.kind.value, f.amount] for f in report.transfers]
    return _table(["time (UTC)", "kind", "amount"], rows) if rows else "<p>No deposits or withdrawals.</p>"


# charts


def _image(png: bytes) -> str:
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _figure(rows: int = 1, within=None):
    """A chart's figure with ``rows`` panels, or ``within`` a part of a larger one (a PDF page)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    figure = within if within is not None else Figure(figsize=(11, 3.2 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, color="#e3e6ec")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return figure, axes


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _equity_chart(report: Report) -> bytes:
    return _png(equity_figure(report))


def equity_figure(report: Report, within=None):  # -> matplotlib.figure.Figure
    figure, (ax,) = _figure(within=within)
    days = [row.day for row in report.daily]
    ax.plot(days, [float(r.equity) for r in report.daily], color=PORTFOLIO_COLOUR, linewidth=2, label="portfolio")
    if isinstance(report.benchmark, Benchmark):
        label = f"{report.benchmark.symbol.split('/')[0]} buy & hold, same cash flows"
        held = [float(d.equity) for d in report.benchmark.daily]
        # Dashed with markers: the two lines tell apart in grey print or without colour vision.
        style = {"linestyle": "--", "marker": "o", "markevery": _every(days), "markersize": 4}
        ax.plot(days, held, color=BENCHMARK_COLOUR, linewidth=2, label=label, **style)
    ax.set_title("Equity (USDT)", loc="left")
    ax.legend(loc="upper left", frameon=False)
    _date_axis(ax, days)
    return figure


def _every(days: Sequence[date]) -> int:
    """A marker every ``n`` points: about twenty along the line."""
    return max(1, len(days) // 20)


def _drawdown_chart(report: Report) -> bytes:
    return _png(drawdown_figure(report))


def drawdown_figure(report: Report, within=None):  # -> matplotlib.figure.Figure
    figure, (ax,) = _figure(within=within)
    days = [row.day for row in report.daily]
    drawdown = [row.drawdown_pct for row in report.daily]
    ax.fill_between(days, drawdown, 0, color=DRAWDOWN_COLOUR, alpha=0.8, linewidth=0)
    ax.set_title("Drawdown (%)", loc="left")
    _date_axis(ax, days)
    return figure


def _rolling_chart(report: Report) -> bytes | None:
    figure = rolling_figure(report)
    return None if figure is None else _png(figure)


def rolling_panels(report: Report) -> list[tuple[str, list[tuple[date, float]], str]]:
    """The rolling windows that have data (a range shorter than a window has none)."""
    sharpe = [(d, v) for d, v in report.rolling_sharpe if v is not None]
    drawdown = [(d, v * 100) for d, v in report.rolling_max_drawdown]
    return [
        (title, points, colour)
        for title, points, colour in (
            ("Rolling 30-day Sharpe", sharpe, PORTFOLIO_COLOUR),
            ("Rolling 90-day max drawdown (%)", drawdown, DRAWDOWN_COLOUR),
        )
        if len(points) >= 2
    ]


def rolling_figure(report: Report, within=None):  # -> matplotlib.figure.Figure | None
    """The rolling windows that have data, one panel each (None: none has)."""
    panels = rolling_panels(report)
    if not panels:
        return None
    figure, axes = _figure(len(panels), within)
    for ax, (title, points, colour) in zip(axes, panels, strict=True):
        days = [d for d, _ in points]
        ax.plot(days, [v for _, v in points], color=colour)
        ax.set_title(title, loc="left")
        _date_axis(ax, days)
    return figure


def _date_axis(ax: Axes, days: Sequence[date]) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlim(days[0], days[-1])  # type: ignore[arg-type]  # matplotlib converts dates; its stubs say float
