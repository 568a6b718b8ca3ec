"""The only code that turns Decimals and datetimes into SQLite values and back.

sqlite-utils converts a Decimal to a float on insert, so money goes in as ``str(Decimal)`` text,
quantized to the ledger's 8 places, and is never summed in SQL as text or floats: a sum in SQL adds
whole 1e-8 units as integers (``units_sql``), which is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from portfolio_cli.money import ZERO, q8


def money(value: Decimal) -> str:
    """Fixed-point text with the ledger's 8 places (``0.00000000``, never ``0E-8``)."""
    return f"{q8(value):f}"


def optional_money(value: Decimal | None) -> str | None:
    return None if value is None else money(value)


def decimal(text: str) -> Decimal:
    return Decimal(text)


def optional_decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def units_sql(column: str) -> str:
    """SQL turning a money column into whole 1e-8 units, so that SQLite can sum it exactly in integers
    (never in floats). Fixed-point text loses its point; text written before it was fixed-point
    (``1E-7``: only amounts below 1e-6 were written so) is exact through a double at that size."""
    exact = f"replace({column}, '.', '')"
    return f"cast(case when instr({column}, 'E') then round({column} * 100000000) else {exact} end as integer)"


def from_units(units: int | None) -> Decimal:
    return Decimal(units).scaleb(-8) if units else ZERO


def timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)
