"""A signed statement is what its key signed: re-encoding or replaying it changes nothing.

The attack (issue 11, item 1): post an evaluation, then a correction; fetch the first
envelope back from the API (any reader can) and post it again, re-encoded. It must
answer 200 with the first log index, and the correction must keep counting.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry.core.keys import SigningKey
from registry.core.predicates import ApprovalPredicate, EvaluationPredicate
from registry.core.roles import Role
from tests.conftest import Api, Deployment, api_with_policy
from tests.support.api import (
    attest,
    log_size,
    new_key,
    post_attestation,
    promote,
    push_model,
    status,
    unmet,
)
from tests.support.content import NAME, digests
from tests.support.trust import signed, statement_about

POLICY = b"""
[channels.production]
evaluation = { r2 = ">=0.85" }
approvals = { role = "governor", min = 2 }
"""


def _indented(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, indent=4).encode()


def _unpadded(envelope: dict[str, Any]) -> bytes:
    return json.dumps({**envelope, "payload": envelope["payload"].rstrip("=")}).encode()


def _urlsafe(envelope: dict[str, Any]) -> bytes:
    payload = base64.b64decode(envelope["payload"])
    return json.dumps(
        {**envelope, "payload": base64.urlsafe_b64encode(payload).decode().rstrip("=")}
    ).encode()


def _reordered(envelope: dict[str, Any]) -> bytes:
    return json.dumps(dict(reversed(list(envelope.items())))).encode()


def _with_a_stranger(envelope: dict[str, Any]) -> bytes:
    """The same signature, beside a signature by a key the registry does not know."""
    stranger = SigningKey.generate()
    payload = base64.b64decode(envelope["payload"])
    extra = signed_payload(payload, stranger)
    return json.dumps({**envelope, "signatures": [*envelope["signatures"], extra]}).encode()


def signed_payload(payload: bytes, k: SigningKey) -> dict[str, str]:
    from registry.core.dsse import sign_envelope

    sig = sign_envelope(payload, k).signatures[0]
    return {"keyid": sig.keyid, "sig": base64.b64encode(sig.sig).decode()}


REENCODINGS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "indented": _indented,
    "unpadded-base64": _unpadded,
    "urlsafe-base64": _urlsafe,
    "reordered": _reordered,
    "extra-unknown-signature": _with_a_stranger,
}


def _evaluation(raw: bytes, k: SigningKey, r2: float) -> bytes:
    statement = statement_about(raw, NAME, "v1", EvaluationPredicate({"r2": r2}))
    return signed(statement, k).to_json()


@pytest.mark.parametrize("encoding", REENCODINGS)
def test_a_superseded_evaluation_cannot_be_replayed_past_the_policy(
    deployment: Deployment, tmp_path: Path, encoding: str
) -> None:
    api = api_with_policy(deployment, tmp_path, POLICY)
    try:
        raw = push_model(api, "v1")
        worker = new_key(api, "worker")
        for governor in (new_key(api, "governor"), new_key(api, "governor")):
            attest(api, raw, "v1", governor, ApprovalPredicate("production"))
        first = post_attestation(api, raw, _evaluation(raw, worker, 0.95))
        assert first.status_code == 201
        correction = post_attestation(api, raw, _evaluation(raw, worker, 0.50))
        assert correction.status_code == 201
        assert "evaluation.r2" in unmet(status(api, raw))
        listed = api.client.get(
            f"/v1/artifacts/{digests(raw).blake3}/attestations", headers=api.auth(Role.READER)
        ).json()["attestations"]
        old = next(a for a in listed if a["log_index"] == first.json()["log_index"])
        size = log_size(api)

        replay = post_attestation(api, raw, REENCODINGS[encoding](old["envelope"]), Role.GOVERNOR)

        assert replay.status_code == 200, replay.text
        assert replay.json()["log_index"] == first.json()["log_index"]
        assert replay.json()["statement_sha256"] == first.json()["statement_sha256"]
        assert log_size(api) == size  # nothing logged
        refused = promote(api, raw)
        assert refused.status_code == 409
        assert "evaluation.r2" in unmet(refused.json())
        assert len(
            api.client.get(
                f"/v1/artifacts/{digests(raw).blake3}/attestations",
                headers=api.auth(Role.READER),
            ).json()["attestations"]
        ) == len(listed)
    finally:
        api.client.__exit__(None, None, None)


def test_two_keys_signing_the_same_statement_are_two_statements(api: Api) -> None:
    """Distinct keys still count apart (approvals need distinct governors)."""
    raw = push_model(api, "v1")
    alice, bob = new_key(api, "governor"), new_key(api, "governor")
    approval = statement_about(raw, NAME, "v1", ApprovalPredicate("production"))
    a = post_attestation(api, raw, signed(approval, alice).to_json())
    b = post_attestation(api, raw, signed(approval, bob).to_json())
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["log_index"] != b.json()["log_index"]
    assert a.json()["statement_sha256"] != b.json()["statement_sha256"]


def test_one_signer_per_statement_so_no_signature_can_be_stripped_and_replayed(
    api: Api,
) -> None:
    """An envelope with two valid worker signatures is refused (a stripped copy would
    be a statement never recorded); two signers post one envelope each, and the
    combined envelope replayed later answers the first acceptance."""
    raw = push_model(api, "v1")
    a, b = new_key(api, "worker"), new_key(api, "worker")
    statement = statement_about(raw, NAME, "v1", EvaluationPredicate({"r2": 0.95}))
    by_a, by_b = signed(statement, a), signed(statement, b)
    both = json.loads(by_a.to_json())
    both["signatures"] += json.loads(by_b.to_json())["signatures"]
    refused = post_attestation(api, raw, json.dumps(both).encode())
    assert refused.status_code == 422
    assert "one envelope per signer" in refused.json()["detail"]
    first = post_attestation(api, raw, by_a.to_json())
    second = post_attestation(api, raw, by_b.to_json())
    assert (first.status_code, second.status_code) == (201, 201)
    again = post_attestation(api, raw, json.dumps(both).encode())
    assert again.status_code == 200
    assert again.json()["log_index"] in (first.json()["log_index"], second.json()["log_index"])
