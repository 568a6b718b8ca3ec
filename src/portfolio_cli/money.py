"""The one place numbers enter the program: exact decimals, never floats.

The ledger keeps 8 decimal places. Rounding is always named: ``ROUND_HALF_UP`` for amounts the
ledger stores, ``ROUND_DOWN`` where an exchange truncates (quantities to a lot step).
"""

import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from portfolio_cli.errors import InvalidInput

LEDGER_PLACES = Decimal("0.00000001")
PCT_PLACES = Decimal("0.01")
# Far beyond any real quantity or price; larger input is a typo, not a trade.
ABSURD = Decimal("1e15")
ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)


# What a number may look like as text: ASCII digits only (no Arabic-Indic or fullwidth digits, no
# "1_000"), an optional sign, point and short exponent, and no more than MAX_NUMBER_CHARS characters.
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})?")
MAX_NUMBER_CHARS = 40
MAX_MAGNITUDE = 30  # no amount, price or rate is 10^30 or more, or has a digit below 10^-30


def D(value: str | int | Decimal) -> Decimal:
    """Build a Decimal from text, an int or a Decimal. Floats are refused: they are not exact. Text
    must be a plain ASCII decimal of at most 40 characters, and every number within 10^±30."""
    if isinstance(value, float):
        raise TypeError("floats are not exact; pass a str")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_CHARS or not NUMBER.fullmatch(text):
            raise ValueError(f"not a number: {value[:MAX_NUMBER_CHARS]!r}")
        number = Decimal(text)
    else:
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError, TypeError):
            raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    if number and not -MAX_MAGNITUDE <= number.adjusted() < MAX_MAGNITUDE:
        raise ValueError(f"out of range: {str(value)[:MAX_NUMBER_CHARS]}")
    return number


def q8(value: Decimal) -> Decimal:
    """Round to the ledger's 8 places, half up (and never a negative zero)."""
    rounded = value.quantize(LEDGER_PLACES, rounding=ROUND_HALF_UP)
    return rounded if rounded else abs(rounded)


def round_down_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """Truncate ``qty`` to a whole number of ``step`` (how exchanges treat lot sizes)."""
    if step <= 0:
        return qty
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def parse_positive(text: str, what: str) -> Decimal:
    """Parse a user-typed amount that must be a positive, sane number with at most 8 places."""
    try:
        number = D(text)
    except ValueError:
        raise InvalidInput(f"{what} must be a number, got {text!r}") from None
    if number <= 0:
        raise InvalidInput(f"{what} must be greater than 0, got {text}")
    if number >= ABSURD:
        raise InvalidInput(f"{what} is too large: {text}")
    if q8(number) == 0:
        raise InvalidInput(f"{what} is below the ledger's precision of 8 decimal places: {text}")
    return number


def pct_of(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part / whole × 100`` rounded to 2 places; None when ``whole`` is zero (undefined)."""
    if whole == 0:
        return None
    return (part / whole * HUNDRED).quantize(PCT_PLACES, rounding=ROUND_HALF_UP)
