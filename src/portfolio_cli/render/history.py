"""Snapshots, history with its charts, verification and cron lines."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from portfolio_cli.render import add_numeric_columns, money, pct, safe, signed
from portfolio_cli.render.charts import line_chart
from portfolio_cli.render.fit import FitTable
from portfolio_cli.services.history import History
from portfolio_cli.services.snapshots import SkippedDay, SnapshotRun
from portfolio_cli.services.verify import VerifyReport


def float_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value, 2) + 0.0:,.2f}"  # + 0.0: no "-0.00"


def _signed_pct(value: float | None) -> Text:
    if value is None or round(value, 2) == 0:
        return Text(float_pct(value))
    return Text(float_pct(value), style="green" if value > 0 else "red")


def snapshot_view(run: SnapshotRun) -> Table:
    table = FitTable(title=f"Snapshots for {run.day} (UTC)", box=box.SIMPLE_HEAD)
    table.add_column("portfolio")
    add_numeric_columns(table, "equity", "margin level %", "positions", "backfilled")
    add_numeric_columns(table, "not taken")
    for p in run.portfolios:
        s = p.today
        table.add_row(
            safe(p.portfolio),
            money(s.equity) if s else "—",
            pct(s.margin_level_pct) if s else "—",
            str(len(s.positions)) if s else "—",
            str(len(p.backfilled)),
            Text(str(len(p.skipped)), style="yellow") if p.skipped else "0",
        )
    if run.dropped:
        table.caption = f"{run.dropped} snapshot(s) older than the retention window dropped"
    return table


def skipped_lines(run: SnapshotRun) -> list[str]:
    """The days that could not be snapshotted, for stderr: one line per run of consecutive days
    with the same reason, naming every symbol that lacked a price."""
    lines = []
    for p in run.portfolios:
        runs: list[list[SkippedDay]] = []
        for skipped in p.skipped:
            last = runs[-1][-1] if runs else None
            if last and last.reason == skipped.reason and (skipped.day - last.day).days == 1:
                runs[-1].append(skipped)
            else:
                runs.append([skipped])
        for days in runs:
            first_day, last_day = days[0].day, days[-1].day
            when = f"{first_day}" if first_day == last_day else f"{first_day} to {last_day} ({len(days)} days)"
            symbols = sorted({s for d in days for s in d.unpriced})
            lines.append(f"{p.portfolio}: {when} not snapshotted: {days[0].reason}: {', '.join(symbols)}")
    return lines


def history_view(history: History, width: int) -> RenderableType:
    if not history.rows:
        return Text(f"No snapshots for {history.portfolio} in that range: take one with `portfolio snapshot`")
    table = FitTable(
        title=f"History of {safe(history.portfolio)}, by {history.every}",
        box=box.SIMPLE_HEAD,
        caption="time-weighted returns: deposits and withdrawals are not returns · total: since the first row · "
        "b: backfilled",
        drop=("drawdown %", "net deposits", "total %"),
    )
    table.add_column(history.every.value, no_wrap=True, min_width=12)
    add_numeric_columns(table, "equity", "net deposits", "PnL", "return %", "total %", "drawdown %")
    for row in history.rows:
        table.add_row(
            f"{row.day}{' b' if row.backfilled else ''}",
            money(row.equity),
            money(row.net_flows) if row.net_flows else "",
            signed(row.pnl),
            _signed_pct(row.return_pct),
            _signed_pct(row.cumulative_return_pct),
            Text(float_pct(row.drawdown_pct), style="red" if row.drawdown_pct < -0.005 else ""),
        )
    summary = Text(
        f"{len(history.daily)} daily snapshots ({history.backfilled_days} backfilled) · "
        f"time-weighted return {float_pct(history.total_return_pct)} % · "
        f"max drawdown {float_pct(history.max_drawdown_pct)} %"
    )
    if len(history.daily) < 2:
        return Group(table, summary)
    days = [row.day for row in history.daily]
    equity = line_chart("Equity (USDT)", days, {"equity": [float(r.equity) for r in history.daily]}, width)
    drawdown = line_chart("Drawdown (%)", days, {"drawdown": [r.drawdown_pct for r in history.daily]}, width)
    return Group(table, summary, Text(), equity, Text(), drawdown)


def verify_view(report: VerifyReport) -> RenderableType:
    checked = (
        f"{report.portfolios} portfolios, {report.trades} trades, {report.closes} closes, "
        f"{report.cash_flows} cash flows and {report.snapshots} snapshots rebuilt from the records"
    )
    if report.ok:
        return Text(f"OK: integrity check passed; {checked}; no difference")
    table = FitTable(title="Differences", box=box.SIMPLE_HEAD)
    table.add_column("portfolio")
    table.add_column("record")
    table.add_column("difference", wrap=True)
    for d in report.differences:
        table.add_row(safe(d.portfolio or "—"), d.record, safe(d.detail))
    integrity = "passed" if report.integrity == "ok" else f"FAILED: {report.integrity}"
    return Group(Text(f"Integrity check {integrity}; {checked}"), table)
