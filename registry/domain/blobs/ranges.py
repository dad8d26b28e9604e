"""HTTP ``Range`` for blob downloads: one byte range, RFC 9110 §14."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.core.errors import InvalidNumberError
from registry.core.numbers import MAX_DIGITS, parse_decimal
from registry.errors import RangeNotSatisfiableError

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")  # ASCII digits: \d also takes other scripts'


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    length: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.start + self.length - 1}/{size}"


def parse_range(header: str, size: int) -> ByteRange:
    """The single range ``header`` asks for within ``size`` bytes.

    Raises:
        RangeNotSatisfiableError: malformed, multiple ranges, or outside the blob.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiableError(
            f"cannot serve Range {header[:100]!r}: send one range as bytes=START-END, "
            "bytes=START- or bytes=-SUFFIX",
            size_bytes=size,
        )
    first_text, last_text = match.groups()
    try:
        first = parse_decimal(first_text, "a Range position") if first_text else None
        last = parse_decimal(last_text, "a Range position") if last_text else None
    except InvalidNumberError:
        raise RangeNotSatisfiableError(
            f"cannot serve Range {header[:100]!r}: positions are at most {MAX_DIGITS} digits",
            size_bytes=size,
        ) from None
    if first is None:  # suffix: the last N bytes
        assert last is not None
        suffix = last
        if suffix == 0:
            raise RangeNotSatisfiableError(
                "a zero-length suffix range selects nothing", size_bytes=size
            )
        start = max(0, size - suffix)
        return ByteRange(start, size - start)
    start = first
    end = size - 1 if last is None else min(last, size - 1)
    if start >= size or (last is not None and last < start):
        raise RangeNotSatisfiableError(
            f"range {header[:100]!r} lies outside the blob of {size} bytes", size_bytes=size
        )
    return ByteRange(start, end - start + 1)
