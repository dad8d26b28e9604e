"""Content digests: the ``Digest`` value type and the one-pass dual hasher.

Invariants:
- A ``Digest`` is always ``<algorithm>:<64 lowercase hex>`` with algorithm
  ``blake3`` (the primary identity) or ``sha256`` (interop).
- ``BlobDigests`` always holds both digests of the same bytes and their length.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

import blake3

from registry.core.errors import InvalidDigestError

_HEX64 = re.compile(r"[0-9a-f]{64}")


class Algorithm(StrEnum):
    BLAKE3 = "blake3"
    SHA256 = "sha256"


def is_hex64(text: str) -> bool:
    """True when ``text`` is exactly 64 lowercase hexadecimal characters."""
    return _HEX64.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Digest:
    """A parsed, valid digest. Construct with ``Digest.parse`` or the helpers."""

    algorithm: Algorithm
    hex: str

    def __post_init__(self) -> None:
        if not is_hex64(self.hex):
            raise InvalidDigestError(
                f"digest hex must be 64 lowercase hex characters, got {self.hex!r}"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``blake3:<hex>`` or ``sha256:<hex>``.

        Raises:
            InvalidDigestError: unknown algorithm or malformed hex.
        """
        algorithm, sep, hex_part = text.partition(":")
        if not sep:
            raise InvalidDigestError(
                f"digest {text[:80]!r} has no algorithm prefix; expected blake3:<hex> or sha256:<hex>"
            )
        try:
            alg = Algorithm(algorithm)
        except ValueError:
            raise InvalidDigestError(
                f"unsupported digest algorithm {algorithm[:20]!r}; expected blake3 or sha256"
            ) from None
        return cls(alg, hex_part)

    @classmethod
    def blake3(cls, hex_part: str) -> Digest:
        return cls(Algorithm.BLAKE3, hex_part)

    @classmethod
    def sha256(cls, hex_part: str) -> Digest:
        return cls(Algorithm.SHA256, hex_part)

    def __str__(self) -> str:
        return f"{self.algorithm.value}:{self.hex}"


@dataclass(frozen=True, slots=True)
class BlobDigests:
    """Both digests of one byte string, and its length."""

    blake3: Digest
    sha256: Digest
    size_bytes: int

    def matches(self, claimed: Digest) -> bool:
        """True when ``claimed`` (of either algorithm) names these bytes."""
        own = self.blake3 if claimed.algorithm is Algorithm.BLAKE3 else self.sha256
        return own == claimed


class DualHasher:
    """Computes blake3 and sha256 of a byte stream in one pass.

    ``update`` may be called from worker threads (both libraries release the
    GIL on large buffers) but calls must be ordered.
    """

    __slots__ = ("_b3", "_sha", "_size")

    def __init__(self) -> None:
        self._b3 = blake3.blake3()
        self._sha = hashlib.sha256()
        self._size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._b3.update(data)
        self._sha.update(data)
        self._size += len(data)

    def update_blake3(self, data: bytes | memoryview) -> None:
        """Feed blake3 alone (pair with ``update_sha256`` to hash in two threads)."""
        self._b3.update(data)
        self._size += len(data)

    def update_sha256(self, data: bytes | memoryview) -> None:
        self._sha.update(data)

    def finish(self) -> BlobDigests:
        return BlobDigests(
            blake3=Digest.blake3(self._b3.hexdigest()),
            sha256=Digest.sha256(self._sha.hexdigest()),
            size_bytes=self._size,
        )


def digest_bytes(data: bytes) -> BlobDigests:
    """Both digests of an in-memory byte string (manifests, small payloads)."""
    hasher = DualHasher()
    hasher.update(data)
    return hasher.finish()
