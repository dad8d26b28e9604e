"""Sizes and durations with units, as settings and CLI flags spell them.

``parse_size("10GiB") == 10 * 2**30``; ``parse_duration("24h") == 86400.0``.
Plain integers are bytes and plain numbers are seconds.
"""

from __future__ import annotations

import re

from registry.core.errors import InvalidQuantityError

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_QUANTITY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Parse a byte size such as ``512MiB``, ``4MB`` or ``1048576``.

    Raises:
        InvalidQuantityError: not a number with a known unit.
    """
    match = _QUANTITY.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise InvalidQuantityError(
            f"cannot read size {text!r}: use a number with B, KB, MB, GB, KiB, MiB, GiB or TiB"
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(text: str) -> float:
    """Parse a duration in seconds such as ``30s``, ``15m``, ``24h`` or ``2d``.

    Raises:
        InvalidQuantityError: not a number with a known unit.
    """
    match = _QUANTITY.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _DURATION_UNITS:
        raise InvalidQuantityError(
            f"cannot read duration {text!r}: use a number with ms, s, m, h or d"
        )
    return float(match.group(1)) * _DURATION_UNITS[unit]


def format_size(size_bytes: int) -> str:
    """Human form of a byte count, for messages (``1.5 GiB``)."""
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
