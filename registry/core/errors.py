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


class InvalidKeyError(CoreError):
    """Key material is not a valid Ed25519 key (wrong type, length, keyid or encoding)."""


class InvalidEnvelopeError(CoreError):
    """Bytes are not a well-formed DSSE JSON envelope, or its payload type is unsupported."""


class InvalidSignatureError(CoreError):
    """No signature of a DSSE envelope verifies against a trusted key."""


class InvalidStatementError(CoreError):
    """A payload is not a valid in-toto Statement v1 with a Reliquary predicate."""


class InvalidNumberError(CoreError):
    """A decimal integer (a header, query parameter or cursor) is not 1..19 ASCII digits,
    or lies outside the range its field allows."""


class InvalidOciManifestError(CoreError):
    """An OCI or Docker manifest this registry does not accept: not schema 2 JSON of a
    supported media type, a malformed descriptor, a foreign layer, or a media type that
    disagrees with the request's ``Content-Type``."""


class InvalidPolicyError(CoreError):
    """The policy document is not valid; the message names the field."""
