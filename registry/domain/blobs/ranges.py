"""HTTP ``Range`` for blob downloads: one byte range, RFC 9110 §14."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import RangeNotSatisfiableError

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


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
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiableError(
                "a zero-length suffix range selects nothing", size_bytes=size
            )
        start = max(0, size - suffix)
        return ByteRange(start, size - start)
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiableError(
            f"range {header[:100]!r} lies outside the blob of {size} bytes", size_bytes=size
        )
    return ByteRange(start, end - start + 1)
