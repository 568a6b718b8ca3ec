"""The report as a paginated PDF, drawn by matplotlib's PDF backend (already a dependency for the HTML
report's charts, so no new library): the report's tables as the terminal shows them, in a monospaced
font on A4 pages, then the equity (with the benchmark), drawdown and rolling charts of the HTML file,
one to a page. Lines differ by style and marker as well as colour, so the charts read in grey print."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from portfolio_cli import __version__
from portfolio_cli.render.html import drawdown_figure, equity_figure, rolling_figure
from portfolio_cli.render.report import report_view
from portfolio_cli.services.report import Report

A4 = (8.27, 11.69)  # inches, portrait
TEXT_WIDTH = 100  # columns the tables are laid out in
LINES_PER_PAGE = 84
FONT = "DejaVu Sans Mono"  # ships with matplotlib, with the box-drawing characters rich uses


def report_text(report: Report) -> list[str]:
    """The report's tables as plain text lines, ``TEXT_WIDTH`` wide, without the terminal's charts."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=TEXT_WIDTH, color_system=None, force_terminal=False, record=True)
    console.print(report_view(report, TEXT_WIDTH, charts=False))
    return console.export_text().rstrip("\n").split("\n")


def pages(lines: list[str]) -> list[list[str]]:
    """``lines`` cut into pages, each break at a blank line where one is near, so tables stay whole
    when they can."""
    cut: list[list[str]] = []
    while lines:
        if len(lines) <= LINES_PER_PAGE:
            cut.append(lines)
            break
        end = LINES_PER_PAGE
        blanks = [i for i in range(LINES_PER_PAGE * 2 // 3, LINES_PER_PAGE) if not lines[i].strip()]
        if blanks:
            end = blanks[-1] + 1
        cut.append(lines[:end])
        lines = lines[end:]
    return cut


CHART_DPI = 200


def _chart_page(charts: list, figure_class: type):  # -> matplotlib.figure.Figure
    """One A4 page with the charts stacked, each drawn at ``CHART_DPI`` and scaled to the page's width."""
    from matplotlib.image import imread

    page = figure_class(figsize=A4)
    images = []
    for chart in charts:
        png = io.BytesIO()
        chart.savefig(png, format="png", dpi=CHART_DPI)
        png.seek(0)
        images.append(imread(png))
    width = 0.9
    heights = [width * A4[0] / A4[1] * image.shape[0] / image.shape[1] for image in images]
    scale = min(1.0, 0.9 / sum(heights))  # shrink all when they do not fit one page
    top = 0.96
    for image, height in zip(images, heights, strict=True):
        height *= scale
        ax = page.add_axes((0.05, top - height, width * scale, height))
        ax.imshow(image, interpolation="lanczos")
        ax.set_axis_off()
        top -= height + 0.01
    return page


def report_pdf(report: Report) -> bytes:
    """The whole report as PDF bytes: text pages, then one page per chart."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    buffer = io.BytesIO()
    metadata = {"Title": f"Report for {report.portfolio}", "Creator": f"portfolio-cli {__version__}"}
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text_pages = pages(report_text(report))
    with PdfPages(buffer, metadata=metadata) as pdf:
        for number, lines in enumerate(text_pages, start=1):
            figure = Figure(figsize=A4)
            figure.text(0.05, 0.965, "\n".join(lines), family=FONT, fontsize=7, va="top", ha="left")
            footer = f"portfolio-cli {__version__} · generated {generated} · page {number}"
            figure.text(0.05, 0.02, footer, family=FONT, fontsize=6, color="#5b6576")
            pdf.savefig(figure)
        if len(report.daily) >= 2:
            charts = [equity_figure(report), drawdown_figure(report), rolling_figure(report)]
            pdf.savefig(_chart_page([c for c in charts if c is not None], Figure))
    return buffer.getvalue()
