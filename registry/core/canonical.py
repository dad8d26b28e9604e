"""Canonical JSON (RFC 8785, JCS) and strict parsing.

Invariant: ``canonical_bytes(loads_strict(b)) == b`` for every ``b`` that
``require_canonical`` accepts, so the bytes a client sent are the bytes that
are hashed, signed, stored and served.
"""

from __future__ import annotations

import json
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
    """Parse UTF-8 JSON, refusing duplicate keys, NaN/Infinity and invalid UTF-8.

    Raises:
        InvalidJSONError: the bytes are not strict JSON.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJSONError(f"body is not UTF-8: {exc}") from exc
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise InvalidJSONError(f"body is not JSON: {exc}") from exc


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
