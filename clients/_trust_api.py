"""The trust half of ``RegistryClient``: signing keys, attestations, the transparency log.

Invariants:
- Nothing returned here is trusted. Envelopes, checkpoints, entries and proofs
  are verified by the caller (``clients.trust``, ``clients.audit``) against
  pinned keys and roots; here an answer is only checked for the promised shape
  and for naming what was asked (an attestation names the envelope we sent, or a
  statement one of its signatures signed: the registry answers a statement it
  accepted before with that first acceptance).
- Registering a key (same key, same role), revoking one (the first revocation
  stays) and posting an envelope (same statement, same log index) are idempotent on
  the server, so they retry like GETs.
- A keyid is checked to be 64 lowercase hex before it goes into a URL path.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from clients._answers import json_list, json_object, proof_hashes
from clients._http import HttpSession, Retry
from clients.errors import InvalidRequestError, VerificationError
from registry.core.digest import Digest, is_hex64
from registry.core.dsse import Envelope, statement_sha256
from registry.core.errors import CoreError

JSON = "application/json"


def _json_body(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def _statements(envelope_json: bytes) -> set[str]:
    """The statements an envelope's signatures sign (``dsse.statement_sha256``)."""
    try:
        envelope = Envelope.from_json(envelope_json)
    except CoreError:
        return set()
    return {
        statement_sha256(envelope.payload_type, envelope.payload, s.keyid)
        for s in envelope.signatures
        if is_hex64(s.keyid)
    }


class TrustApi:
    """Mixed into ``RegistryClient``; every method raises the ``clients.errors`` classes."""

    _http: HttpSession

    # -- signing keys -----------------------------------------------------------------
    def register_key(self, public_pem: str, role: str, description: str = "") -> dict[str, Any]:
        """Register an Ed25519 public key (PEM) with ``role``; the key as stored. Admin only.

        Raises:
            RefusedError: 409, the key is registered with another role or was revoked.
            InvalidRequestError: not an Ed25519 public key, or an unknown role.
        """
        response = self._http.request(
            "POST",
            "/v1/keys",
            retry=Retry.IDEMPOTENT,
            headers={"content-type": JSON},
            body=_json_body({"public_key": public_pem, "role": role, "description": description}),
        )
        return json_object(response)

    def keys(self, role: str | None = None) -> list[dict[str, Any]]:
        """Every registered key (revoked ones included), optionally of one role."""
        params = {"role": role} if role else None
        response = self._http.request("GET", "/v1/keys", retry=Retry.IDEMPOTENT, params=params)
        return json_list(response)

    def revoke_key(self, keyid: str, reason: str) -> dict[str, Any]:
        """Revoke ``keyid`` for good (logged); the key with ``revoked_at``. Admin only.

        Raises:
            InvalidRequestError: ``keyid`` is not 64 lowercase hex, or the reason is empty.
            NotFoundError: no such key.
        """
        if not is_hex64(keyid):
            raise InvalidRequestError(f"keyid {keyid[:80]!r} is not 64 lowercase hex characters")
        response = self._http.request(
            "POST",
            f"/v1/keys/{keyid}/revoke",
            retry=Retry.IDEMPOTENT,
            headers={"content-type": JSON},
            body=_json_body({"reason": reason}),
        )
        return json_object(response)

    # -- attestations -----------------------------------------------------------------
    def post_attestation(self, digest: Digest, envelope_json: bytes) -> tuple[dict[str, Any], bool]:
        """Post a DSSE envelope about artifact ``digest``; (attestation, created).

        Raises:
            RefusedError: 422, the registry refused it (unknown, revoked or wrong-role
                key, another artifact's statement, bad signature).
            InvalidRequestError: not a DSSE envelope carrying an in-toto statement.
            NotFoundError: no such artifact.
            VerificationError: the answer names another envelope or no log index.
        """
        response = self._http.request(
            "POST",
            f"/v1/artifacts/{digest}/attestations",
            retry=Retry.IDEMPOTENT,
            headers={"content-type": JSON},
            body=envelope_json,
        )
        attestation = json_object(response)
        sent = hashlib.sha256(envelope_json).hexdigest()
        index = attestation.get("log_index")
        if not isinstance(index, int) or (
            attestation.get("envelope_sha256") != sent
            and attestation.get("statement_sha256") not in _statements(envelope_json)
        ):
            raise VerificationError(
                f"posted envelope sha256:{sent} but the registry answered for "
                f"{attestation.get('envelope_sha256')!r} with log index {index!r}"
            )
        return attestation, response.status_code == 201

    def attestations(
        self, digest: Digest, predicate_type: str | None = None
    ) -> list[dict[str, Any]]:
        """The attestations stored for ``digest``, oldest first; each carries its ``envelope``.

        Raises:
            NotFoundError: no such artifact.
        """
        params = {"predicate_type": predicate_type} if predicate_type else None
        response = self._http.request(
            "GET", f"/v1/artifacts/{digest}/attestations", retry=Retry.IDEMPOTENT, params=params
        )
        return json_list(response, "attestations")

    # -- transparency log -------------------------------------------------------------
    def log_checkpoint(self) -> bytes:
        """The current signed checkpoint note, exactly as served (verify it before use)."""
        return self._http.request("GET", "/v1/log/checkpoint", retry=Retry.IDEMPOTENT).content

    def log_key(self) -> str:
        """The note verifier key the registry says signs its checkpoints."""
        response = self._http.request("GET", "/v1/log/key", retry=Retry.IDEMPOTENT)
        return response.text.strip()

    def log_entries(self, start: int, end: int) -> list[dict[str, Any]]:
        """Entries ``[start, end)`` (at most 1000): ``{"index", "kind", "entry"}``, ``entry``
        the base64 of the exact leaf bytes."""
        response = self._http.request(
            "GET",
            "/v1/log/entries",
            retry=Retry.IDEMPOTENT,
            params={"start": start, "end": end},
        )
        return json_list(response, "entries")

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

        Raises:
            InvalidRequestError: the log has no such index or size.
            VerificationError: the hashes are not base64 of 32 bytes.
        """
        response = self._http.request(
            "GET",
            "/v1/log/proof/inclusion",
            retry=Retry.IDEMPOTENT,
            params={"index": index, "size": size},
        )
        return proof_hashes(response)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """The RFC 9162 consistency proof from tree size ``old`` to ``new``.

        Raises:
            InvalidRequestError: not ``0 < old <= new <= log size``.
            VerificationError: the hashes are not base64 of 32 bytes.
        """
        response = self._http.request(
            "GET",
            "/v1/log/proof/consistency",
            retry=Retry.IDEMPOTENT,
            params={"from": old, "to": new},
        )
        return proof_hashes(response)
