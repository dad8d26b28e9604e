"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` envelopes.

A note is ``body || "\\n" || signature lines``; each line is
``"\u2014 " || key name || " " || base64(key ID || Ed25519 signature over body) || "\\n"`` with
key ID = ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``. The bytes are exactly what Go's
``golang.org/x/mod/sumdb/note`` signs and opens, and the verifier key string is what its
``NewVerifier`` parses.

Invariants:
- A ``Checkpoint`` always has a non-empty origin without control characters, a size in
  ``[0, 2**63)`` (Go's ``int64``), and a 32-byte root; ``body()`` is its one canonical form.
- ``Checkpoint.from_body`` is strict about the three mandatory lines (decimal size without
  leading zeros, canonical padded base64 of 32 bytes). Extension lines after the root are
  allowed, as tlog-checkpoint says, but must be non-empty; they are ignored and not kept, so
  they are not part of the parsed value (our log never writes any).
- ``open_checkpoint`` returns a checkpoint only after a signature from the given key verified
  over the exact bytes received. It does not compare the origin with the key name: the caller
  knows which origin it expects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from registry.core.errors import CoreError

ED25519_TYPE = 0x01
MAX_SIZE = 2**63 - 1
MAX_SIGNATURES = 100  # signed-note: verifiers MUST accept at least 16; Go's note accepts 100
SIGNATURE_PREFIX = "\u2014 "  # em dash, space

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")  # ASCII, bounded: int() fails past 4300
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class InvalidCheckpointError(CoreError):
    """A checkpoint, signed note or note key is malformed, or no trusted signature verifies."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode_strict(text: str, what: str) -> bytes:
    """Decode standard, padded base64, refusing any other spelling of the same bytes.

    Raises:
        InvalidCheckpointError: ``text`` is not the canonical base64 of some bytes.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise InvalidCheckpointError(f"{what} is not standard base64: {exc}") from None
    if _b64(raw) != text:
        raise InvalidCheckpointError(f"{what} is not canonical padded base64")
    return raw


def _has_control(text: str) -> bool:
    """True when ``text`` holds an ASCII control character (below U+0020), newline included."""
    return any(ord(ch) < 0x20 for ch in text)


def _check_key_name(name: str) -> None:
    """signed-note: key names are non-empty, with no Unicode spaces and no ``+``.

    Raises:
        InvalidCheckpointError: the name breaks those rules or holds a control character.
    """
    if not name:
        raise InvalidCheckpointError("note key name must not be empty")
    if "+" in name or any(ch.isspace() for ch in name) or _has_control(name):
        raise InvalidCheckpointError(
            f"note key name {name[:80]!r} must not contain '+', whitespace or control characters"
        )


def key_id(name: str, public_raw: bytes) -> bytes:
    """``SHA-256(name || 0x0A || 0x01 || public_raw)[:4]``: the signed-note Ed25519 key ID."""
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + public_raw
    ).digest()[:4]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin line, tree size, RFC 6962 root hash."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not self.origin:
            raise InvalidCheckpointError("checkpoint origin must not be empty")
        if _has_control(self.origin):
            raise InvalidCheckpointError(
                f"checkpoint origin {self.origin[:80]!r} must be one line without control characters"
            )
        try:
            self.origin.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidCheckpointError("checkpoint origin must be encodable as UTF-8") from None
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise InvalidCheckpointError(f"checkpoint size must be an int, got {self.size!r}")
        if not 0 <= self.size <= MAX_SIZE:
            raise InvalidCheckpointError(f"checkpoint size must be in [0, 2**63), got {self.size}")
        if len(self.root) != 32:
            raise InvalidCheckpointError(
                f"checkpoint root must be 32 bytes, got {len(self.root)} bytes"
            )

    def body(self) -> bytes:
        """The note text: ``origin\\nsize\\nbase64(root)\\n``."""
        return f"{self.origin}\n{self.size}\n{_b64(self.root)}\n".encode()

    @classmethod
    def from_body(cls, body: bytes) -> Checkpoint:
        """Parse a tlog-checkpoint note text (extension lines are checked, then ignored).

        Raises:
            InvalidCheckpointError: not UTF-8, a control character, an empty line, a missing
                line, a non-canonical size or root, or no final newline.
        """
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCheckpointError("checkpoint body is not UTF-8") from None
        if not text.endswith("\n"):
            raise InvalidCheckpointError("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise InvalidCheckpointError(
                f"checkpoint body has {len(lines)} lines; origin, size and root are required"
            )
        if any(not line for line in lines):
            raise InvalidCheckpointError("checkpoint body lines must not be empty")
        if any(_has_control(line) for line in lines):
            raise InvalidCheckpointError("checkpoint body must not contain control characters")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not _DECIMAL.fullmatch(size_text):
            raise InvalidCheckpointError(
                f"checkpoint size {size_text[:30]!r} is not a decimal without leading zeros"
            )
        root = _b64decode_strict(root_text, "checkpoint root")
        return cls(origin, int(size_text), root)


class NoteSigner:
    """Signs note texts with one Ed25519 key under one signed-note key name."""

    __slots__ = ("_private", "key_hash", "name", "public_raw")

    def __init__(self, name: str, private_seed: bytes) -> None:
        """Raises InvalidCheckpointError: a bad key name, or a seed that is not 32 bytes."""
        _check_key_name(name)
        if len(private_seed) != 32:
            raise InvalidCheckpointError(
                f"Ed25519 seed must be 32 bytes, got {len(private_seed)} bytes"
            )
        self._private = Ed25519PrivateKey.from_private_bytes(private_seed)
        self.name = name
        self.public_raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_hash = key_id(name, self.public_raw)

    def __repr__(self) -> str:
        return f"NoteSigner({self.verifier_key()!r})"

    def verifier_key(self) -> str:
        """``name+<key ID hex>+base64(0x01 || public key)``, as Go's ``note.NewVerifier`` parses."""
        return f"{self.name}+{self.key_hash.hex()}+{_b64(bytes([ED25519_TYPE]) + self.public_raw)}"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_hash, self.public_raw)

    def sign_text(self, text: bytes) -> bytes:
        """The signed note for an arbitrary note ``text`` (what ``sign`` uses for checkpoints).

        Raises:
            InvalidCheckpointError: ``text`` is not UTF-8, has control characters other than
                newline, or does not end with a newline (no verifier could open the note).
        """
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCheckpointError("note text is not UTF-8") from None
        if not decoded.endswith("\n") or _has_control(decoded.replace("\n", "")):
            raise InvalidCheckpointError(
                "note text must end with a newline and hold no other control characters"
            )
        signature = self._private.sign(text)
        line = f"{SIGNATURE_PREFIX}{self.name} {_b64(self.key_hash + signature)}\n"
        return text + b"\n" + line.encode("utf-8")

    def sign(self, checkpoint: Checkpoint) -> bytes:
        """The whole signed note: ``checkpoint.body()``, a blank line, one signature line."""
        return self.sign_text(checkpoint.body())


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A trusted Ed25519 note key: its name, its 4-byte key ID and its raw public key."""

    name: str
    key_hash: bytes
    public_raw: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.public_raw) != 32:
            raise InvalidCheckpointError(
                f"Ed25519 public key must be 32 bytes, got {len(self.public_raw)} bytes"
            )
        if self.key_hash != key_id(self.name, self.public_raw):
            raise InvalidCheckpointError(
                f"key ID {self.key_hash.hex()} does not match key name {self.name!r} "
                "and its public key"
            )

    @classmethod
    def parse(cls, verifier_key: str) -> NoteVerifier:
        """Parse ``name+<8 hex>+base64(0x01 || 32-byte public key)``.

        Raises:
            InvalidCheckpointError: malformed, not an Ed25519 key, or a key ID that does not
                match the name and key.
        """
        name, _, rest = verifier_key.partition("+")
        hash_hex, _, key_b64 = rest.partition("+")
        if not _HEX8.fullmatch(hash_hex):
            raise InvalidCheckpointError(
                "verifier key must look like <name>+<8 hex digits>+<base64 key>"
            )
        key = _b64decode_strict(key_b64, "verifier public key")
        if len(key) != 33 or key[0] != ED25519_TYPE:
            raise InvalidCheckpointError(
                "verifier key is not an Ed25519 note key (type 0x01 and 32 bytes)"
            )
        return cls(name, bytes.fromhex(hash_hex), key[1:])

    def verifier_key(self) -> str:
        """The string form ``parse`` reads."""
        return f"{self.name}+{self.key_hash.hex()}+{_b64(bytes([ED25519_TYPE]) + self.public_raw)}"


def open_note(note: bytes, verifier: NoteVerifier) -> bytes:
    """Verify a signed note against one trusted key and return its text (body) bytes.

    Follows the C2SP signed-note rules in order; signatures from other keys are ignored.

    Raises:
        InvalidCheckpointError: the note is malformed, a signature from ``verifier`` fails, or
            none from ``verifier`` is present.
    """
    # 1. A note is valid UTF-8 without ASCII control characters other than newline.
    try:
        text = note.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCheckpointError("signed note is not UTF-8") from None
    if _has_control(text.replace("\n", "")):
        raise InvalidCheckpointError("signed note contains control characters")
    # 2. The body ends at the last blank line; the signature block follows it and ends with "\n".
    split = note.rfind(b"\n\n")
    if split < 0:
        raise InvalidCheckpointError("signed note has no blank line before its signatures")
    body, block = note[: split + 1], note[split + 2 :]
    if not block or not block.endswith(b"\n"):
        raise InvalidCheckpointError("signed note must end with signature lines")
    lines = block[:-1].decode("utf-8").split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidCheckpointError(f"signed note has more than {MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        # 3. Every line is "— <key name> <base64(key ID || signature)>".
        if not line.startswith(SIGNATURE_PREFIX):
            raise InvalidCheckpointError(f"signed note line {line[:80]!r} is not a signature")
        name, _, sig_b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        _check_key_name(name)
        raw = _b64decode_strict(sig_b64, f"signature of {name[:80]!r}")
        if len(raw) < 5:
            raise InvalidCheckpointError(f"signature of {name[:80]!r} is too short")
        # 4. Lines from keys we do not know (name and ID both matching) are ignored.
        if name != verifier.name or raw[:4] != verifier.key_hash:
            continue
        # 5. A signature from the known key must verify over the exact body bytes.
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public_raw).verify(raw[4:], body)
        except InvalidSignature:
            raise InvalidCheckpointError(
                f"signature from {verifier.name}+{verifier.key_hash.hex()} does not verify"
            ) from None
        verified = True
    # 6. At least one signature from the known key must have verified.
    if not verified:
        raise InvalidCheckpointError(
            f"signed note carries no signature from {verifier.name}+{verifier.key_hash.hex()}"
        )
    return body


def open_checkpoint(note: bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body.

    The origin is not compared with the key name; callers check the origin they expect.

    Raises:
        InvalidCheckpointError: the note does not open with ``verifier`` (see ``open_note``) or
            its body is not a valid checkpoint.
    """
    return Checkpoint.from_body(open_note(note, verifier))
