"""How every figure the tool prints is written: one module, so a number looks the same everywhere.

- money (USDT): 2 decimals with thousands separators in tables; exact in ``--json``
- prices: to the market's tick when it is known, else at most 6 significant digits (never fewer than
  2 decimals, never more than the ledger's 8)
- quantities: as recorded (the ledger's 8 places at most), padded to the lot step when it is known
- percentages: 2 decimals
- zero is ``0.00`` / ``0``, never ``0E-8`` or ``-0.00``
- moments: ``2026-03-01 14:30 UTC`` in tables and messages; ISO-8601 UTC (``2026-03-01T14:30:00Z``)
  in JSON, where decimals are fixed-point strings (``"0.00000000"``, never ``"0E-8"``)

Rounding is half up (Python's default for Decimal formatting is half even).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from pathlib import Path
from typing import Any

NA = "n/a"
SIGNIFICANT = 6
MAX_PLACES = 8
TIME_FORMAT = "%Y-%m-%d %H:%M"


def _grouped(value: Decimal) -> str:
    """Fixed point with thousands separators and no negative zero."""
    if not value:
        value = abs(value)
    return f"{value:,f}"


def _places(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def money(value: Decimal | None, places: int = 2) -> str:
    """USDT amounts: thousands separators, ``places`` decimals (2 in tables), rounded half up."""
    if value is None:
        return NA
    return _grouped(_places(value, places))


def price_places(value: Decimal, tick: Decimal | None = None) -> int:
    """Decimals a price is shown with: the tick's, else enough for ``SIGNIFICANT`` digits (2 to 8)."""
    if tick is not None and tick > 0:
        return max(0, -tick.normalize().as_tuple().exponent)  # type: ignore[operator]
    if not value:
        return 2
    integer_digits = value.copy_abs().adjusted() + 1  # 65000 → 5, 0.05 → -1
    return min(MAX_PLACES, max(2, SIGNIFICANT - integer_digits))


def price(value: Decimal | None, tick: Decimal | None = None) -> str:
    """A price in its quote currency, to the tick (or by the significant-digit rule), trailing zeros
    beyond the second decimal trimmed when no tick is known."""
    if value is None:
        return NA
    shown = _grouped(_places(value, price_places(value, tick)))
    if tick is None and "." in shown:
        whole, _, frac = shown.partition(".")
        shown = f"{whole}.{frac.rstrip('0').ljust(2, '0')}"
    return shown


def qty(value: Decimal | None, step: Decimal | None = None) -> str:
    """A quantity as recorded, with thousands separators; padded to the lot step's decimals."""
    if value is None:
        return NA
    if value.as_tuple().exponent < -MAX_PLACES:  # type: ignore[operator]
        value = _places(value, MAX_PLACES)  # a computed quantity (notional / price): the ledger's places
    shown = _grouped(value.normalize() if value else Decimal(0))
    if step is not None and step > 0:
        places = max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]
        whole, _, frac = shown.partition(".")
        frac = frac.ljust(places, "0")
        shown = f"{whole}.{frac}" if frac else whole
    return shown


def exact(value: object) -> str:
    """A decimal exactly, in fixed point without trailing zeros (``0``, never ``0E-8``); other values as text."""
    if value is None:
        return NA
    if not isinstance(value, Decimal):
        return str(value)
    return f"{value.normalize():f}" if value else "0"


def pct(value: Decimal | None) -> str:
    return NA if value is None else _grouped(_places(value, 2))


def leverage(value: Decimal) -> str:
    return f"{value.normalize():f}x"


def moment(value: datetime | None) -> str:
    """The one table and message format for a moment: ``2026-03-01 14:30 UTC``."""
    if value is None:
        return NA
    return f"{value.astimezone(UTC):{TIME_FORMAT}} UTC"


def day(value: date | datetime) -> str:
    return f"{value:%Y-%m-%d}"


def duration(seconds: float) -> str:
    """A span for people: ``45 s``, ``12 min``, ``3 h``, ``5 d``."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def age(moment_: datetime, now: datetime) -> str:
    return duration((now - moment_).total_seconds())


def json_value(value: Any) -> Any:
    """The JSON form of what ``json`` cannot write itself: fixed-point decimals, ISO-8601 UTC times."""
    if isinstance(value, Decimal):
        return f"{value:f}" if value else f"{abs(value):f}"
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
        return text.replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(payload: Any, indent: int | None = 2) -> str:
    """``payload`` (plain data, as pydantic's python mode gives it) as JSON text; a float that is not
    finite (JSON has no NaN) is written as null."""
    try:
        return json.dumps(payload, indent=indent, default=json_value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(payload), indent=indent, default=json_value, ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
