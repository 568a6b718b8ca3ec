"""Line charts drawn in the terminal by plotext, handed to rich as styled text.

plotext keeps one global figure, so each chart clears it first; its ANSI colours become rich styles,
which rich drops on a terminal without colour or under ``NO_COLOR``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from rich.text import Text

HEIGHT = 12
# One marker per series, so that each reads without colour (NO_COLOR, a monochrome terminal, print):
# the first is drawn in fine braille dots, the next ones in plain characters, which the legend shows.
MARKERS = ("braille", "•", "+", "x")


def line_chart(
    title: str, days: Sequence[date], series: Mapping[str, Sequence[float]], width: int, height: int = HEIGHT
) -> Text:
    """One chart of one or more series over ``days`` (all series as long as ``days``)."""
    import plotext as plt

    plt.clf()
    plt.theme("clear")
    plt.date_form("Y-m-d")
    plt.plotsize(max(width, 40), height)
    plt.title(title)
    labels = [day.isoformat() for day in days]
    for (name, values), marker in zip(series.items(), MARKERS * len(series), strict=False):
        plt.plot(labels, list(values), marker=marker, label=name if len(series) > 1 else None)
    return Text.from_ansi(plt.build())
