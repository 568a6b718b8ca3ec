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
