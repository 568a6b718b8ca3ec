"""Free text typed by a user (notes, strategy tags) as the terminal will see it.

Control characters (ESC starts terminal escape sequences; tab and newline are kept) and the
invisible bidi and zero-width marks are never sent to a terminal raw: new text containing them is
refused, and text already in a ledger is shown with them escaped (``\\x1b``).
"""

from __future__ import annotations

import re

MAX_TEXT = 1000
# C0 and C1 controls but tab and newline, zero-width marks and the bidi overrides and isolates.
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def printable(text: str) -> str:
    """``text`` with every control, bidi and zero-width character written as an escape."""
    return _HIDDEN.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def safe(text: str) -> str:
    """User text inside rich markup: control characters escaped (``printable``), markup escaped."""
    from rich.markup import escape

    return escape(printable(text))


def hidden_character(text: str) -> str | None:
    """The first character of ``text`` that must not reach a terminal, escaped; None if there is none."""
    found = _HIDDEN.search(text)
    return printable(found.group()) if found else None
