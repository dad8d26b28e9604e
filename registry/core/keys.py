"""Ed25519 keys: the only key type Reliquary signs and verifies with.

Invariants:
- A ``PublicKey`` always holds exactly 32 raw bytes and ``keyid`` is
  ``key_id(raw)``: the lowercase hex sha256 of those bytes. The keyid is
  derived, never chosen, so one key has one keyid everywhere.
- ``PublicKey.verify`` answers a yes/no question and never raises.
- A ``SigningKey`` always wraps an Ed25519 private key; its secret leaves only
  through ``to_pem`` (PKCS8, unencrypted) and ``private_raw`` (the 32-byte seed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from registry.core.digest import is_hex64
from registry.core.errors import InvalidKeyError

RAW_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def key_id(raw_public_key: bytes) -> str:
    """Lowercase hex sha256 of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(raw_public_key).hexdigest()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A valid Ed25519 public key and its keyid."""

    keyid: str
    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != RAW_KEY_BYTES:
            raise InvalidKeyError(
                f"an Ed25519 public key is {RAW_KEY_BYTES} raw bytes, got {len(self.raw)}"
            )
        if not is_hex64(self.keyid) or self.keyid != key_id(self.raw):
            raise InvalidKeyError(
                f"keyid {self.keyid[:80]!r} is not the sha256 of the key ({key_id(self.raw)})"
            )

    @classmethod
    def from_raw(cls, raw: bytes) -> PublicKey:
        """The key with 32 raw bytes ``raw``.

        Raises:
            InvalidKeyError: ``raw`` is not 32 bytes.
        """
        return cls(key_id(raw), bytes(raw))

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        """Load a SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``).

        Raises:
            InvalidKeyError: not a PEM public key, or not an Ed25519 one.
        """
        try:
            loaded = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidKeyError(f"not a PEM SubjectPublicKeyInfo public key: {exc}") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise InvalidKeyError(
                f"only Ed25519 keys are supported, got {type(loaded).__name__.lstrip('_')}"
            )
        return cls.from_raw(_raw_public(loaded))

    def to_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM, the form ``from_pem`` reads."""
        return Ed25519PublicKey.from_public_bytes(self.raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``data``.

        Never raises: a malformed signature (or a raw key that is not a curve
        point) is simply not a valid signature.
        """
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True


class SigningKey:
    """An Ed25519 private key. Holds its ``public`` half, computed once."""

    __slots__ = ("_private", "_public")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self._public = PublicKey.from_raw(_raw_public(private.public_key()))

    def __repr__(self) -> str:
        return f"SigningKey(keyid={self._public.keyid!r})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_raw(cls, seed: bytes) -> SigningKey:
        """The key whose 32-byte seed is ``seed`` (the inverse of ``private_raw``).

        Raises:
            InvalidKeyError: ``seed`` is not 32 bytes.
        """
        if len(seed) != RAW_KEY_BYTES:
            raise InvalidKeyError(
                f"an Ed25519 private key seed is {RAW_KEY_BYTES} bytes, got {len(seed)}"
            )
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None) -> SigningKey:
        """Load a PKCS8 PEM private key, encrypted when ``password`` is given.

        Raises:
            InvalidKeyError: not a PEM private key, wrong or missing password,
                or not an Ed25519 key.
        """
        try:
            loaded = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise InvalidKeyError(f"not a usable PKCS8 PEM private key: {exc}") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise InvalidKeyError(
                f"only Ed25519 keys are supported, got {type(loaded).__name__.lstrip('_')}"
            )
        return cls(loaded)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS8 PEM (``-----BEGIN PRIVATE KEY-----``)."""
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public(self) -> PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._private.sign(data)

    def private_raw(self) -> bytes:
        """The 32-byte private seed (what signed-note signers expect)."""
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
