"""DSSE envelopes: https://github.com/secure-systems-lab/dsse (protocol.md, envelope.md).

Invariants:
- Signatures are over ``pae(payload_type, payload)``, never over JSON.
- An ``Envelope`` has at least one signature; every ``keyid`` is a string.
  ``Envelope.from_json`` refuses fields the envelope format does not define,
  at the top level and in each signature, so nothing unsigned rides along
  unnoticed. Base64 may be standard or URL-safe (never mixed), padded or not,
  and must be the canonical encoding of its bytes.
- ``raw`` holds the exact bytes an envelope was parsed from; ``digest_sha256``
  hashes those bytes (or ``to_json()`` for an envelope we built), so posting the
  same bytes twice names the same envelope.
- ``verify_envelope`` returns data only after every check passed.
- A *statement* is what one key signed: ``statement_sha256(type, payload, keyid)``
  hashes the PAE and the keyid, so every re-encoding of an envelope (JSON
  whitespace, key order, base64 padding or alphabet, other signatures beside it)
  names the same statement; only the signer can make a new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from registry.core.canonical import canonical_bytes, loads_strict
from registry.core.errors import InvalidEnvelopeError, InvalidJSONError, InvalidSignatureError
from registry.core.keys import PublicKey, SigningKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"

_ENVELOPE_FIELDS = frozenset({"payload", "payloadType", "signatures"})
_SIGNATURE_FIELDS = frozenset({"keyid", "sig"})
_STANDARD_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: the bytes a signature covers.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` where ``type`` is
    UTF-8 and LEN is the ASCII decimal byte count.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def statement_sha256(payload_type: str, payload: bytes, keyid: str) -> str:
    """Hex sha256 of ``pae(payload_type, payload) || keyid``: the identity of the
    statement ``keyid`` signed, whatever envelope carried it (PAE is length-prefixed,
    so the keyid cannot blur into the payload)."""
    return hashlib.sha256(pae(payload_type, payload) + keyid.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class VerifiedEnvelope:
    """What a verified envelope says. ``keyids`` are the trusted keys that signed it."""

    payload_type: str
    payload: bytes
    keyids: frozenset[str]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A well-formed (not yet verified) DSSE envelope."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]
    raw: bytes | None = None

    def __post_init__(self) -> None:
        if not self.signatures:
            raise InvalidEnvelopeError("envelope has no signatures")

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Parse a DSSE JSON envelope, keeping ``data`` as ``raw``.

        The caller enforces a size limit before calling.

        Raises:
            InvalidEnvelopeError: not strict JSON, a missing, mistyped or
                unknown field, empty ``signatures``, or bad base64.
        """
        try:
            doc = loads_strict(data)
        except InvalidJSONError as exc:
            raise InvalidEnvelopeError(f"envelope is not strict JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidEnvelopeError("envelope must be a JSON object")
        _require_fields(doc, _ENVELOPE_FIELDS, "envelope")
        payload_type = doc["payloadType"]
        if not isinstance(payload_type, str):
            raise InvalidEnvelopeError("envelope payloadType must be a string")
        payload = _b64decode(doc["payload"], "envelope payload")
        entries = doc["signatures"]
        if not isinstance(entries, list) or not entries:
            raise InvalidEnvelopeError("envelope signatures must be a non-empty list")
        signatures = tuple(_parse_signature(entry, i) for i, entry in enumerate(entries))
        return cls(payload_type, payload, signatures, raw=data)

    def to_json(self) -> bytes:
        """RFC 8785 canonical JSON with standard, padded base64."""
        return canonical_bytes(
            {
                "payload": _b64encode(self.payload),
                "payloadType": self.payload_type,
                "signatures": [
                    {"keyid": s.keyid, "sig": _b64encode(s.sig)} for s in self.signatures
                ],
            }
        )

    @property
    def digest_sha256(self) -> str:
        """Hex sha256 of ``raw`` when parsed, else of ``to_json()``: the envelope's identity."""
        return hashlib.sha256(self.raw if self.raw is not None else self.to_json()).hexdigest()


def _require_fields(doc: dict[str, Any], fields: frozenset[str], where: str) -> None:
    unknown = sorted(set(doc) - fields)
    if unknown:
        raise InvalidEnvelopeError(
            f"{where} has unknown field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    missing = sorted(fields - set(doc))
    if missing:
        raise InvalidEnvelopeError(f"{where} is missing {', '.join(missing)}")


def _parse_signature(entry: object, index: int) -> Signature:
    where = f"signatures[{index}]"
    if not isinstance(entry, dict):
        raise InvalidEnvelopeError(f"{where} must be an object with keyid and sig")
    _require_fields(entry, _SIGNATURE_FIELDS, where)
    keyid = entry["keyid"]
    if not isinstance(keyid, str):
        raise InvalidEnvelopeError(f"{where}.keyid must be a string")
    return Signature(keyid=keyid, sig=_b64decode(entry["sig"], f"{where}.sig"))


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: object, where: str) -> bytes:
    """Decode standard or URL-safe base64 (DSSE verifiers must accept either).

    Padding may be omitted; the encoding must be canonical (zero trailing bits).
    """
    if not isinstance(value, str):
        raise InvalidEnvelopeError(f"{where} must be a base64 string")
    if _STANDARD_B64.fullmatch(value):
        altchars = b"+/"
    elif _URLSAFE_B64.fullmatch(value):
        altchars = b"-_"
    else:
        raise InvalidEnvelopeError(
            f"{where} is not base64: use the standard (+/) or URL-safe (-_) alphabet, "
            "not both, with at most two '=' of padding"
        )
    unpadded = value.rstrip("=")
    if len(unpadded) % 4 == 1 or (len(value) != len(unpadded) and len(value) % 4 != 0):
        raise InvalidEnvelopeError(f"{where} is not base64: bad length or padding")
    try:
        decoded = base64.b64decode(
            unpadded + "=" * (-len(unpadded) % 4), altchars=altchars, validate=True
        )
    except binascii.Error as exc:
        raise InvalidEnvelopeError(f"{where} is not base64: {exc}") from None
    if base64.b64encode(decoded, altchars=altchars).decode("ascii").rstrip("=") != unpadded:
        raise InvalidEnvelopeError(f"{where} is not canonical base64 (non-zero trailing bits)")
    return decoded


def sign_envelope(payload: bytes, key: SigningKey, payload_type: str = PAYLOAD_TYPE) -> Envelope:
    """An envelope carrying ``payload`` with one signature by ``key``."""
    signature = Signature(keyid=key.public.keyid, sig=key.sign(pae(payload_type, payload)))
    return Envelope(payload_type=payload_type, payload=payload, signatures=(signature,))


def verify_envelope(
    envelope: Envelope,
    trusted: Mapping[str, PublicKey],
    payload_types: Collection[str] = (PAYLOAD_TYPE,),
) -> VerifiedEnvelope:
    """Verify ``envelope`` against ``trusted`` keys (keyid -> key), threshold one.

    Follows the DSSE protocol's verification steps. ``keyids`` in the result
    are the ``PublicKey.keyid`` of every trusted key with a valid signature.

    Raises:
        InvalidSignatureError: no signature verifies; names the keyids seen and
            which of them are not trusted.
        InvalidEnvelopeError: a signature verified but the payload type is not
            one of ``payload_types``.
    """
    # 1. Receive and decode SERIALIZED_BODY, PAYLOAD_TYPE, SIGNATURES: done,
    #    an Envelope is always well formed.
    message = pae(envelope.payload_type, envelope.payload)
    accepted: set[str] = set()
    unknown: list[str] = []
    for signature in envelope.signatures:
        # 2. Filter acceptable public keys by KEYID; a signature by a key we
        #    do not trust is skipped, not an error.
        key = trusted.get(signature.keyid)
        if key is None:
            unknown.append(signature.keyid)
            continue
        # 3. Verify SIGNATURE against PAE(UTF8(PAYLOAD_TYPE), SERIALIZED_BODY);
        #    skip it if verification fails.
        if key.verify(signature.sig, message):
            # 4. Add the accepted public key to ACCEPTED_KEYS.
            accepted.add(key.keyid)
    # 5. Reject if fewer than t (here 1) unique trusted keys signed.
    if not accepted:
        seen = _keyid_list(s.keyid for s in envelope.signatures)
        untrusted = _keyid_list(unknown) if unknown else "none"
        raise InvalidSignatureError(
            f"no signature verifies against a trusted key; keyids seen: {seen}; "
            f"not trusted: {untrusted}"
        )
    # 6. Reject if PAYLOAD_TYPE is not a supported type.
    if envelope.payload_type not in payload_types:
        raise InvalidEnvelopeError(
            f"payloadType {envelope.payload_type[:100]!r} is not supported; "
            f"expected {', '.join(sorted(payload_types))}"
        )
    # 7. Parsing SERIALIZED_BODY is the caller's (intoto.Statement.from_payload).
    return VerifiedEnvelope(envelope.payload_type, envelope.payload, frozenset(accepted))


def _keyid_list(keyids: Iterable[str]) -> str:
    unique = list(dict.fromkeys(k[:64] for k in keyids))
    shown = ", ".join(repr(k) for k in unique[:10])
    return shown + (f" and {len(unique) - 10} more" if len(unique) > 10 else "")
