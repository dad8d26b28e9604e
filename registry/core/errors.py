"""Errors raised by registry.core: every one is a ``ValueError`` about bad input."""

from __future__ import annotations


class CoreError(ValueError):
    """Base of every error registry.core raises."""


class InvalidDigestError(CoreError):
    """A digest string is not ``blake3:<64 hex>`` or ``sha256:<64 hex>``."""


class InvalidJSONError(CoreError):
    """Bytes are not strict JSON (bad UTF-8, duplicate keys, NaN, trailing data)."""


class NonCanonicalJSONError(CoreError):
    """JSON parsed but its bytes are not the RFC 8785 canonical form.

    ``expected`` holds the canonical bytes the sender should have sent.
    """

    def __init__(self, message: str, expected: bytes) -> None:
        super().__init__(message)
        self.expected = expected


class InvalidManifestError(CoreError):
    """A manifest breaks the ``reliquary.manifest.v1`` schema; ``problems`` lists why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class InvalidQuantityError(CoreError):
    """A size or duration setting could not be parsed (``10GiB``, ``24h``)."""
