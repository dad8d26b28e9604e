"""Verifying attestations offline against a pinned trust root; the registry's word counts for nothing.

A trust root is a JSON file the user pins and reviews::

    {"keys": [{"keyid": "<hex sha256 of the raw key>",
               "public_key": "-----BEGIN PUBLIC KEY-----...",
               "role": "publisher" | "worker" | "governor"}, ...]}

``reliquary keys list --json`` prints exactly this shape (with more fields, which
are ignored), so a reviewed copy of its output is a trust root. A bare list of
key objects is read the same way. An entry whose ``revoked_at`` is set is kept
but trusts nothing: without a trusted clock, no signature by it is accepted.

Invariants:
- A ``TrustRoot`` holds valid Ed25519 keys only, each under the keyid derived from
  it: a stated keyid that does not match its key is refused, not corrected.
- ``verify_attestation`` returns only after every check passed, in this order:
  1. the envelope is a well-formed DSSE envelope (``dsse.Envelope.from_json``);
  2. a signature verifies over its PAE with a pinned, unrevoked key, before the
     payload is parsed (DSSE: verify, then parse);
  3. the payload is an in-toto Statement v1 with a known, well-formed predicate;
  4. a key that signed it is pinned with a role that may make this predicate;
  5. a subject carries both digests of the manifest the caller verified.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.errors import InvalidRequestError, VerificationError
from registry.core import intoto
from registry.core.dsse import Envelope, verify_envelope
from registry.core.errors import CoreError
from registry.core.keys import PublicKey
from registry.core.manifest import ParsedManifest
from registry.core.predicates import SIGNING_ROLES, short_name
from registry.core.roles import KEY_ROLES, Role


@dataclass(frozen=True, slots=True)
class TrustedKey:
    public: PublicKey
    role: Role  # one of KEY_ROLES
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class TrustRoot:
    """Pinned keys by keyid."""

    keys: Mapping[str, TrustedKey]

    @classmethod
    def from_json(cls, data: bytes, source: str = "trust root") -> TrustRoot:
        """Parse a trust root document (see the module docstring).

        Raises:
            InvalidRequestError: not that shape, a bad key, a keyid that does not
                match its key, an unknown role, or one key pinned with two roles.
        """
        try:
            doc: Any = json.loads(data)
        except ValueError as exc:
            raise InvalidRequestError(f"{source} is not JSON: {exc}") from exc
        entries = doc.get("keys") if isinstance(doc, dict) else doc
        if not isinstance(entries, list):
            raise InvalidRequestError(f'{source} must be {{"keys": [...]}} or a list of keys')
        keys: dict[str, TrustedKey] = {}
        for position, entry in enumerate(entries):
            key = _trusted_key(entry, f"{source} keys[{position}]")
            if keys.get(key.public.keyid, key).role != key.role:
                raise InvalidRequestError(f"{source} pins {key.public.keyid} with two roles")
            keys[key.public.keyid] = key
        return cls(keys)

    @classmethod
    def load(cls, path: Path) -> TrustRoot:
        """Raises InvalidRequestError (see ``from_json``), OSError."""
        return cls.from_json(path.read_bytes(), str(path))


def _trusted_key(entry: object, where: str) -> TrustedKey:
    if not isinstance(entry, dict):
        raise InvalidRequestError(f"{where} must be an object with keyid, public_key and role")
    pem, role, stated = entry.get("public_key"), entry.get("role"), entry.get("keyid")
    if not isinstance(pem, str):
        raise InvalidRequestError(f"{where}.public_key must be a PEM string")
    if role not in KEY_ROLES:
        raise InvalidRequestError(f"{where}.role must be one of {', '.join(sorted(KEY_ROLES))}")
    try:
        public = PublicKey.from_pem(pem.encode())
    except CoreError as exc:
        raise InvalidRequestError(f"{where}.public_key: {exc}") from exc
    if stated is not None and stated != public.keyid:
        raise InvalidRequestError(
            f"{where}.keyid {str(stated)[:80]!r} is not the keyid of its key ({public.keyid})"
        )
    return TrustedKey(public, Role(role), revoked=entry.get("revoked_at") is not None)


@dataclass(frozen=True, slots=True)
class VerifiedAttestation:
    """A statement that passed every check, and the pinned keys that vouch for it."""

    statement: intoto.Statement
    keyids: frozenset[str]


def verify_attestation(
    envelope_json: bytes, manifest: ParsedManifest, root: TrustRoot
) -> VerifiedAttestation:
    """Verify one DSSE envelope about ``manifest`` against ``root``, offline.

    Raises:
        VerificationError: any check of the module docstring failed; the message says which.
    """
    try:  # 1. a well-formed envelope
        envelope = Envelope.from_json(envelope_json)
    except CoreError as exc:
        raise VerificationError(f"not a DSSE envelope: {exc}") from exc
    usable = {k: t.public for k, t in root.keys.items() if not t.revoked}
    try:  # 2. a pinned, unrevoked key signed it
        verified = verify_envelope(envelope, usable)
    except CoreError as exc:
        raise VerificationError(_signature_problem(envelope, root, exc)) from exc
    try:  # 3. the payload is a statement we understand
        statement = intoto.Statement.from_payload(verified.payload)
    except CoreError as exc:
        raise VerificationError(f"signed payload is not a valid statement: {exc}") from exc
    allowed = SIGNING_ROLES[statement.predicate_type]
    signers = frozenset(k for k in verified.keyids if root.keys[k].role in allowed)
    if not signers:  # 4. ... with a role that may make it
        pinned = ", ".join(f"{k} as {root.keys[k].role}" for k in sorted(verified.keyids))
        raise VerificationError(
            f"signed by {pinned} in the trust root, but "
            f"{short_name(statement.predicate_type)} needs a "
            + " or ".join(sorted(allowed))
            + " key"
        )
    digests = manifest.digests
    if not statement.names(digests.blake3.hex, digests.sha256.hex):  # 5. about this artifact
        named = ", ".join(f"{s.name} blake3:{s.blake3}" for s in statement.subjects)
        raise VerificationError(
            f"the statement is about {named}, not {manifest.manifest.name}@"
            f"{manifest.manifest.version} ({digests.blake3})"
        )
    return VerifiedAttestation(statement, signers)


def _signature_problem(envelope: Envelope, root: TrustRoot, exc: Exception) -> str:
    reasons: list[str] = []
    for signature in envelope.signatures:
        pinned = root.keys.get(signature.keyid)
        keyid = signature.keyid[:64]
        if pinned is None:
            reasons.append(f"{keyid} is not in the trust root")
        elif pinned.revoked:
            reasons.append(f"{keyid} is revoked in the trust root")
        else:
            reasons.append(f"{keyid}'s signature does not verify")
    return "no signature verifies with a pinned key: " + ("; ".join(reasons) or str(exc))


@dataclass(frozen=True, slots=True)
class AttestationCheck:
    """The verdict on one listed attestation; ``log_index`` is what the registry said."""

    log_index: object
    predicate_type: str
    verified: bool
    reason: str
    keyids: tuple[str, ...] = ()


def check_attestations(
    listed: list[dict[str, Any]], manifest: ParsedManifest, root: TrustRoot
) -> list[AttestationCheck]:
    """Verify every attestation the registry listed for ``manifest``; one verdict each."""
    checks: list[AttestationCheck] = []
    for attestation in listed:
        said = short_name(str(attestation.get("predicate_type", "?")))
        index = attestation.get("log_index")
        try:
            envelope_json = json.dumps(attestation.get("envelope")).encode()
            result = verify_attestation(envelope_json, manifest, root)
        except VerificationError as exc:
            checks.append(AttestationCheck(index, said, False, exc.message))
            continue
        kind = short_name(result.statement.predicate_type)
        signers = tuple(sorted(result.keyids))
        roles = "/".join(sorted({root.keys[k].role for k in signers}))
        reason = f"signed by {', '.join(k[:16] + '…' for k in signers)} ({roles})"
        checks.append(AttestationCheck(index, kind, True, reason, signers))
    return checks
