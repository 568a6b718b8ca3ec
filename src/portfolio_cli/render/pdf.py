"""The report as a paginated PDF, drawn by matplotlib's PDF backend (already a dependency for the HTML
report's charts, so no new library): the report's tables as the terminal shows them, in a monospaced
font on A4 pages, then the equity (with the benchmark), drawdown and rolling charts of the HTML file,
drawn as vectors on a page of their own. Lines differ by style and marker as well as colour, so the
charts read in grey print.

Page breaks fall between the report's parts, never inside one: a table (or tables side by side) stays
whole with its title, and a heading stays with the part after it. Only a part taller than a whole page
is cut: tables side by side are then taken one by one, and a single table taller than a page (some
80 rows: a breakdown of that many symbols, say) is cut between two of its rows.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from portfolio_cli import __version__
from portfolio_cli.render.html import drawdown_figure, equity_figure, rolling_figure, rolling_panels
from portfolio_cli.render.report import report_parts
from portfolio_cli.services.report import Report

A4 = (8.27, 11.69)  # inches, portrait
TEXT_WIDTH = 100  # columns the tables are laid out in
LINES_PER_PAGE = 84
FONT = "DejaVu Sans Mono"  # ships with matplotlib, with the box-drawing characters rich uses


def report_blocks(report: Report) -> list[list[str]]:
    """The report's tables as plain text lines, ``TEXT_WIDTH`` wide, without the terminal's charts, in
    blocks that a page break must not cut: each part of the report, a heading joined to the part after
    it, tables side by side taken one by one when together they are taller than a page."""
    from rich.columns import Columns
    from rich.console import Console, RenderableType
    from rich.text import Text

    console = Console(file=io.StringIO(), width=TEXT_WIDTH, color_system=None, force_terminal=False, record=True)

    def lines(renderable: RenderableType) -> list[str]:
        console.print(renderable)
        # export_text clears what was recorded; the padding at the lines' ends costs glyphs, not looks
        return [line.rstrip() for line in console.export_text().rstrip("\n").split("\n")]

    blocks: list[list[str]] = []
    heading: list[str] = []
    for part in report_parts(report, TEXT_WIDTH, charts=False):
        if isinstance(part, Text):
            heading += lines(part)
            continue
        drawn = lines(part)
        if len(heading) + len(drawn) > LINES_PER_PAGE and isinstance(part, Columns):
            pieces = [lines(table) for table in part.renderables]
        else:
            pieces = [drawn]
        blocks += [heading + pieces[0], *pieces[1:]]
        heading = []
    if heading:
        blocks.append(heading)
    return blocks


def pages(blocks: list[list[str]], size: int = LINES_PER_PAGE) -> list[list[str]]:
    """``blocks`` laid out on pages of ``size`` lines: a block goes whole to the next page when it does
    not fit on this one; only a block taller than a page is cut, between two of its lines."""
    laid: list[list[str]] = []
    page: list[str] = []
    for block in blocks:
        if page and len(page) + len(block) > size:
            laid.append(page)
            page = []
        while len(block) > size:
            laid.append(block[:size])
            block = block[size:]
        page += block
    if page:
        laid.append(page)
    return laid


def _chart_page(report: Report):  # -> matplotlib.figure.Figure | None
    """One A4 page with the charts stacked, each drawn straight onto it as vectors: a panel's height
    in proportion to its rows (the rolling windows have one or two)."""
    from matplotlib.figure import Figure

    if len(report.daily) < 2:
        return None
    charts = [(equity_figure, 1), (drawdown_figure, 1)]
    if rolling_panels(report):
        charts.append((rolling_figure, len(rolling_panels(report))))
    page = Figure(figsize=A4)  # fixed margins: a constrained layout costs a third of the page's time
    parts = page.subfigures(len(charts), 1, height_ratios=[rows for _, rows in charts], squeeze=False)[:, 0]
    for (draw, rows), part in zip(charts, parts, strict=True):
        draw(report, within=part)
        part.subplots_adjust(left=0.1, right=0.97, top=1 - 0.12 / rows, bottom=0.12 / rows, hspace=0.45)
    return page


def report_pdf(report: Report) -> bytes:
    """The whole report as PDF bytes: text pages, then the charts' page."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    buffer = io.BytesIO()
    metadata = {"Title": f"Report for {report.portfolio}", "Creator": f"portfolio-cli {__version__}"}
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with PdfPages(buffer, metadata=metadata) as pdf:
        for number, lines in enumerate(pages(report_blocks(report), LINES_PER_PAGE), start=1):
            figure = Figure(figsize=A4)
            figure.text(0.05, 0.965, "\n".join(lines), family=FONT, fontsize=7, va="top", ha="left")
            footer = f"portfolio-cli {__version__} · generated {generated} · page {number}"
            figure.text(0.05, 0.02, footer, family=FONT, fontsize=6, color="#5b6576")
            pdf.savefig(figure)
        charts = _chart_page(report)
        if charts is not None:
            pdf.savefig(charts)
    return buffer.getvalue()
