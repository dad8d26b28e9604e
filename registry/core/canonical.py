"""Canonical JSON (RFC 8785, JCS) and strict parsing.

Invariants:

- ``canonical_bytes(loads_strict(b)) == b`` for every ``b`` that
  ``require_canonical`` accepts, so the bytes a client sent are the bytes that
  are hashed, signed, stored and served.
- ``loads_strict`` is the one JSON parser for everything that arrives from
  outside (manifests, envelopes, statements, request bodies): it refuses
  duplicate keys, NaN/Infinity and out-of-range numbers, number literals over
  ``MAX_NUMBER_CHARS`` characters and nesting deeper than ``MAX_DEPTH`` levels.
  The depth is measured by a linear scan before decoding (no recursion), so no
  input can make it raise anything but ``InvalidJSONError``.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

import rfc8785

from registry.core.errors import InvalidJSONError, NonCanonicalJSONError


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 serialisation of a JSON-compatible value.

    Raises:
        InvalidJSONError: the value has no canonical form (NaN, huge integers, non-str keys).
    """
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InvalidJSONError(f"value has no canonical JSON form: {exc}") from exc


MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted (ours need fewer than 10)."""
MAX_NUMBER_CHARS = 64
"""Longest number literal accepted (Python refuses integers over 4 300 digits)."""

# A JSON string, or an unterminated one running to the end of the text: matching the
# unterminated case too keeps the scan linear (no rescan from every later quote).
_STRING = re.compile(r'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 / -1 as signed bytes


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text``, without recursion.

    Exact for valid JSON; for invalid JSON, exact up to the first error ``json`` would
    stop at (strings are skipped the way JSON reads them).
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    steps = memoryview(brackets.encode("ascii").translate(_BRACKET_STEPS)).cast("b")
    return max(accumulate(steps), default=0)


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise InvalidJSONError(
            f"number {literal[:20]}... has {len(literal)} characters; "
            f"at most {MAX_NUMBER_CHARS} are accepted"
        )
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise InvalidJSONError(
            f"number {literal[:20]}... has {len(literal)} characters; "
            f"at most {MAX_NUMBER_CHARS} are accepted"
        )
    value = float(literal)
    if not math.isfinite(value):
        raise InvalidJSONError(f"number {literal} is out of range for a 64-bit float")
    return value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise InvalidJSONError(f"duplicate key {key!r} in JSON object")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise InvalidJSONError(f"{name} is not valid JSON")


def loads_strict(data: bytes) -> Any:
    """Parse UTF-8 JSON, refusing duplicate keys, NaN/Infinity, invalid UTF-8, number
    literals over ``MAX_NUMBER_CHARS`` characters, nesting deeper than ``MAX_DEPTH``
    and NUL characters in strings (no database text column can hold one).

    The caller bounds the size of ``data`` before calling.

    Raises:
        InvalidJSONError: the bytes are not strict JSON, or break a limit above.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJSONError(f"body is not UTF-8: {exc}") from exc
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise InvalidJSONError(
            f"JSON nests {depth} levels deep; at most {MAX_DEPTH} levels of arrays and "
            "objects are accepted"
        )
    try:
        value = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except json.JSONDecodeError as exc:
        raise InvalidJSONError(f"body is not JSON: {exc}") from exc
    # a NUL can only arrive escaped (raw control characters are not JSON): look only then
    if "\\u0000" in text and _holds_nul(value):
        raise InvalidJSONError(
            "a JSON string holds a NUL character (\\u0000); names, labels and text "
            "fields cannot contain it"
        )
    return value


def _holds_nul(value: Any) -> bool:
    """Whether any key or string in ``value`` contains U+0000 (iterative: no recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list):
            pending += item
    return False


def require_canonical(data: bytes) -> Any:
    """Parse ``data`` and check it is already in canonical form.

    Raises:
        InvalidJSONError: not strict JSON.
        NonCanonicalJSONError: valid JSON whose canonical bytes differ; carries them.
    """
    value = loads_strict(data)
    expected = canonical_bytes(value)
    if expected != data:
        at = next(
            (i for i, (a, b) in enumerate(zip(expected, data, strict=False)) if a != b),
            min(len(expected), len(data)),
        )
        raise NonCanonicalJSONError(
            f"body is valid JSON but not RFC 8785 canonical (first difference at byte {at}); "
            "serialise it with an RFC 8785 (JCS) library: keys sorted, no whitespace, "
            "shortest number form",
            expected,
        )
    return value
