"""The only code that turns Decimals and datetimes into SQLite values and back.

sqlite-utils converts a Decimal to a float on insert, so money goes in as ``str(Decimal)`` text,
quantized to the ledger's 8 places, and is never summed in SQL as text or floats: a sum in SQL adds
whole 1e-8 units as integers (``units_sql``), which is exact.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from portfolio_cli.money import ZERO, q8


def money(value: Decimal) -> str:
    """Fixed-point text with the ledger's 8 places (``0.00000000``, never ``0E-8``)."""
    text = str(value)
    if text[-9:-8] == "." and "E" not in text and len(text) <= _EXACT_CHARS:
        # Already 8 places in fixed point (most amounts; an import writes millions): what q8 and "f" give.
        return text
    return f"{q8(value):f}"


_EXACT_CHARS = 28  # within the context's 28 digits: q8 leaves such a number as it is (a longer one may raise)
_MONEY = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]{8}")
_ZERO_TEXT = "0.00000000"


def is_money(text: str) -> bool:
    """Whether ``text`` is already what ``money`` writes for it: ``money(Decimal(text)) == text``
    (fixed point, 8 places, no leading zero, no negative zero). An import's amounts mostly are."""
    return len(text) <= _EXACT_CHARS and text != "-" + _ZERO_TEXT and _MONEY.fullmatch(text) is not None


def negated_money(text: str) -> str:
    """``money(-Decimal(text))`` for ``text`` that ``is_money``: the sign turned, zero left as it is."""
    if text[0] == "-":
        return text[1:]
    return text if text == _ZERO_TEXT else "-" + text


def optional_money(value: Decimal | None) -> str | None:
    return None if value is None else money(value)


def decimal(text: str) -> Decimal:
    return Decimal(text)


def optional_decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


UNIT_DIGITS = 19  # 10 digits, the point and 8 places: 64-bit integer units hold it exactly


def units_sql(column: str) -> str:
    """SQL turning a money column into whole 1e-8 units, so that SQLite can sum it exactly in integers
    (never in floats), from any decimal text: the ledger's fixed-point 8 places, the shorter texts the
    first release wrote (``-2.1``, ``100``), and ``1E-7`` (only amounts below 1e-6 were written so,
    exact through a double at that size). An amount of 10 billion or more, or with more than 8
    places, would not fit: it becomes an infinite float (a product too large for 64 bits becomes a
    float too), so the sum comes back a float, which ``exact_units`` refuses."""
    point = f"instr({column}, '.')"
    digits = f"substr({column}, 1, {point} - 1) || substr(substr({column}, {point} + 1) || '00000000', 1, 8)"
    return (
        f"(case when instr({column}, 'E') or instr({column}, 'e') then cast(round({column} * 100000000) as integer) "
        f"when {point} = 0 then {column} * 100000000 "
        f"when length({column}) - {point} > 8 or {point} > 12 then 9e999 "
        f"else cast({digits} as integer) end)"
    )


def micros_sql(column: str) -> str:
    """SQL for a UTC ISO-8601 text (with microseconds, or without as the first release wrote it) in
    microseconds since 1970; NULL for any other text."""
    return (
        f"(case when substr({column}, -6) = '+00:00' and length({column}) in (25, 32) "
        f"then cast(strftime('%s', substr({column}, 1, 19)) as integer) * 1000000 "
        f"+ iif(length({column}) = 32, cast(substr({column}, 21, 6) as integer), 0) end)"
    )


ODD_AMOUNT_SQL = "(length(ltrim(amount, '-')) > 19 or instr(amount, 'E') > 0)"  # amounts of 10 billion or more, or 1E-7


def exact_units(total: int | float | None) -> int | None:
    """A sum of ``units_sql``; a float means an amount was too large to sum exactly."""
    if isinstance(total, float):
        raise OverflowError("an amount too large to sum exactly")
    return total


def from_units(units: int | float | None) -> Decimal:
    if units.__class__ is int:  # the common case first: a report converts 100,000 of them
        return Decimal(units).scaleb(-8)
    return Decimal(exact_units(units) or 0).scaleb(-8) if units else ZERO


def timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds, so that text order is time order."""
    global _last_written
    last, text = _last_written
    if moment is last:  # the same moment again: a fill and its flows share one (an import writes millions)
        return text
    if moment.tzinfo is not UTC:  # already UTC: most are
        text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    else:
        text = moment.isoformat(timespec="microseconds")
    _last_written = (moment, text)
    return text


_last_written: tuple[datetime | None, str] = (None, "")  # the last moment written (held, so never reused)


TIMESTAMP_FORM = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00"  # what ``timestamp`` writes
_TIMESTAMP = re.compile(TIMESTAMP_FORM)


def is_timestamp(text: str) -> bool:
    """Whether ``text`` is in the form ``timestamp`` writes, so that the moment it parses to (if it is
    one) is written back as this very text: each field has its fixed width, and the offset is UTC."""
    return _TIMESTAMP.fullmatch(text) is not None


moment = datetime.fromisoformat  # the inverse of ``timestamp`` (a report parses 200,000 of them)
