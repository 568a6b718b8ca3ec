"""`portfolio report --pdf FILE`: a paginated PDF of the report, its pages rendered back to images by
poppler (Debian's poppler-utils, which `.ci/run` installs) to check the text and that every chart is
drawn."""

from __future__ import annotations

import shutil
import stat
import subprocess

import pytest

from test_report import BENCHMARK_LINE, DRAWDOWN_AREA, PORTFOLIO_LINE, traded  # noqa: F401  (the fixture)


def poppler(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.skip(f"no {tool} on this machine: `apt-get install poppler-utils` runs the PDF report's test")
    return found


def test_the_pdf_holds_every_table_and_each_chart(traded, tmp_path):  # noqa: F811
    import numpy as np
    from matplotlib.image import imread

    pdf = tmp_path / "report.pdf"
    result = traded("report", "--pdf", str(pdf))
    assert f"Wrote the PDF report to {pdf}" in result.stderr
    assert pdf.read_bytes().startswith(b"%PDF-") and stat.S_IMODE(pdf.stat().st_mode) == 0o600

    text = subprocess.run([poppler("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    for heading in (
        "Report for main",
        "Performance",
        "PnL (USDT)",
        "Returns by period",
        "Trailing returns",
        "Deepest drawdowns",
        "Closed trades by symbol",
        "PnL by strategy",
    ):
        assert heading in text.stdout, heading
    assert "91.90" in text.stdout and "-103.90" in text.stdout  # the closed trades' net PnL

    subprocess.run([poppler("pdftoppm"), "-r", "80", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    pixels = (imread(pages[-1])[:, :, :3] * 255).round().astype(int)  # the charts' page

    def count(colour: tuple[int, int, int]) -> int:
        return int((np.abs(pixels - np.array(colour)).max(axis=2) <= 24).sum())

    # The equity line, the benchmark's dashed line with its markers, the drawdown area.
    assert count(PORTFOLIO_LINE) > 100
    assert count(BENCHMARK_LINE) > 100
    assert count(DRAWDOWN_AREA) > 500


def test_an_existing_pdf_is_kept_unless_forced(traded, tmp_path):  # noqa: F811
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"mine")
    refused = traded("report", "--pdf", str(pdf), code=2)
    assert "already exists" in refused.stderr and pdf.read_bytes() == b"mine"
    traded("report", "--pdf", str(pdf), "--force")
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_a_page_break_never_cuts_a_block_that_fits_on_a_page():
    from portfolio_cli.render.pdf import pages

    blocks = [[f"{n}.{i}" for i in range(size)] for n, size in enumerate([10, 50, 30, 84, 5, 200, 1])]
    laid = pages(blocks, 84)
    assert [line for page in laid for line in page] == [line for block in blocks for line in block]
    assert all(len(page) <= 84 for page in laid)
    for n, block in enumerate(blocks):
        holding = [i for i, page in enumerate(laid) if any(line.startswith(f"{n}.") for line in page)]
        # A block that fits a page is on one page; one taller than a page fills whole pages from a new one.
        assert len(holding) == (1 if len(block) <= 84 else 3), (n, holding)
    assert [len(page) for page in laid] == [60, 30, 84, 5, 84, 84, 32 + 1]


# Each table's title and the words of its header row: a page that holds one holds the other.
TITLED = {
    "Performance": "metric",
    "PnL (USDT)": "amount",
    "Monthly returns (%)": "Jan",
    "Returns by period": "positive",
    "Deepest drawdowns": "trough",
    "Closed trades (net PnL)": "value",
    "Closed trades by symbol": "avg held",
    "Closed trades by exit reason": "avg held",
}


@pytest.mark.parametrize("lines_per_page", [30, 45])
def test_headings_stay_with_their_tables_across_page_breaks(traded, tmp_path, monkeypatch, lines_per_page):  # noqa: F811
    from portfolio_cli.render import pdf as module

    monkeypatch.setattr(module, "LINES_PER_PAGE", lines_per_page)  # short pages: the report takes several
    pdf = tmp_path / "report.pdf"
    traded("report", "--pdf", str(pdf))
    text = subprocess.run([poppler("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    pages = text.stdout.split("\f")
    assert len(pages) >= 4
    assert pages[0].lstrip().startswith("Report for main")
    for title, header in TITLED.items():
        holding = [page for page in pages if title in page]
        assert len(holding) == 1, title
        below = holding[0].split(title, 1)[1]
        assert header in below, f"{title!r} is on a page without its table"
    for page in pages[:-1]:  # the charts' page last
        body = [line for line in page.splitlines() if line.strip() and "generated" not in line]
        assert body[-1].strip() not in TITLED, f"a page ends on the title {body[-1].strip()!r}"
