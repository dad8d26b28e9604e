"""Decimal integers read from text that arrives from outside (headers, cursors).

The one way to turn such text into an ``int``: ASCII digits only (``str.isdigit``
also accepts ``'²'``, and ``int()`` accepts ``'٣'``, ``'+1'``, ``' 1'`` and ``'1_0'``),
at most ``MAX_DIGITS`` of them (``int()`` raises ``ValueError`` past 4 300 digits), and
never above a bound the caller names (the default fits a signed 64-bit column).
"""

from __future__ import annotations

import re

from registry.core.errors import InvalidNumberError

MAX_DIGITS = 19
INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"[0-9]{1,19}")


def parse_decimal(text: str, what: str, *, maximum: int = INT64_MAX) -> int:
    """The non-negative integer ``text`` spells in ASCII decimal digits.

    ``what`` names the field in the error (``"Upload-Offset"``).

    Raises:
        InvalidNumberError: not 1..19 ASCII digits, or above ``maximum``.
    """
    if _DECIMAL.fullmatch(text) is None:
        shown = text if len(text) <= 40 else f"{text[:40]}... ({len(text)} characters)"
        raise InvalidNumberError(
            f"{what} must be a decimal integer of 1 to {MAX_DIGITS} ASCII digits, not {shown!r}"
        )
    value = int(text)
    if value > maximum:
        raise InvalidNumberError(f"{what} must be at most {maximum}, not {value}")
    return value
