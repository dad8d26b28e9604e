"""Governance: policy status, promotion gated by evidence, rollback, and history."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from registry.core.predicates import ApprovalPredicate, EvaluationPredicate
from registry.core.roles import Role
from tests.conftest import Api, Deployment, api_with_policy
from tests.support.api import attest, new_key, promote, push_model, status, unmet
from tests.support.content import NAME, digests
from tests.support.trust import PUBLISH

POLICY = b"""
[channels.production]
require_publisher_signature = true
evaluation = { r2 = ">=0.85", mae = "<=8.0", rmse = "<=10.0" }
approvals = { role = "governor", min = 2 }
max_regression = { r2 = 0.02 }
"""


def test_promotion_waits_for_every_piece_of_evidence(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, POLICY)
    try:
        raw = push_model(api, "v1")
        assert unmet(status(api, raw)) == {
            "publisher_signature",
            "evaluation.r2",
            "evaluation.mae",
            "evaluation.rmse",
            "approvals",
        }
        refused = promote(api, raw)
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("/policy-unmet")
        assert len(unmet(refused.json())) == 5  # and max_regression, met: nothing to compare
        publisher, worker = new_key(api, "publisher"), new_key(api, "worker")
        alice, bob = new_key(api, "governor"), new_key(api, "governor")
        attest(api, raw, "v1", publisher, PUBLISH)
        attest(
            api,
            raw,
            "v1",
            worker,
            EvaluationPredicate({"r2": 0.80, "mae": 6.2, "rmse": 8.1}),
        )
        assert unmet(status(api, raw)) == {"evaluation.r2", "approvals"}
        attest(
            api,
            raw,
            "v1",
            worker,
            EvaluationPredicate({"r2": 0.91, "mae": 6.2, "rmse": 8.1}),
        )  # the latest evaluation counts
        attest(api, raw, "v1", alice, ApprovalPredicate("production"))
        attest(api, raw, "v1", bob, ApprovalPredicate("staging"))  # another channel
        assert unmet(status(api, raw)) == {"approvals"}
        attest(api, raw, "v1", bob, ApprovalPredicate("production"))
        assert status(api, raw)["promotable"] is True
        # revoking a key withdraws its evidence
        api.client.post(
            f"/v1/keys/{publisher.public.keyid}/revoke",
            json={"reason": "leaked"},
            headers=api.auth(Role.ADMIN),
        )
        assert unmet(status(api, raw)) == {"publisher_signature"}
        attest(api, raw, "v1", new_key(api, "publisher"), PUBLISH)
        done = promote(api, raw)
        assert done.status_code == 200, done.text
        assert done.json()["to_digest"] == str(digests(raw).blake3)
        resolved = api.client.get(
            "/v1/resolve",
            params={"name": NAME, "channel": "production"},
            headers=api.auth(Role.READER),
        )
        assert resolved.json()["digest"] == str(digests(raw).blake3)

        # a regression beyond max_regression is refused
        raw2 = push_model(api, "v2")
        attest(api, raw2, "v2", new_key(api, "publisher"), PUBLISH)
        attest(
            api,
            raw2,
            "v2",
            worker,
            EvaluationPredicate({"r2": 0.88, "mae": 6.0, "rmse": 8.0}),
        )
        for governor in (alice, bob):
            attest(api, raw2, "v2", governor, ApprovalPredicate("production"))
        assert unmet(status(api, raw2)) == {"max_regression.r2"}
        assert promote(api, raw2).status_code == 409
    finally:
        api.client.__exit__(None, None, None)


def test_rollback_history_and_the_log(api: Api) -> None:
    raws = [push_model(api, f"v{i}") for i in (1, 2, 3)]
    for raw in raws:  # no policy file: channels have no requirements
        assert promote(api, raw).status_code == 200
    back = api.client.post(
        "/v1/channels/rollback",
        json={"name": NAME, "channel": "production", "reason": "bad output"},
        headers=api.auth(Role.GOVERNOR),
    )
    assert back.status_code == 200, back.text
    assert back.json()["to_digest"] == str(digests(raws[1]).blake3)
    assert back.json()["from_digest"] == str(digests(raws[2]).blake3)
    to_first = api.client.post(
        "/v1/channels/rollback",
        json={
            "name": NAME,
            "channel": "production",
            "reason": "older is safer",
            "digest": str(digests(raws[0]).sha256),
        },
        headers=api.auth(Role.GOVERNOR),
    )
    assert to_first.status_code == 200
    never = push_model(api, "v9")
    refused = api.client.post(
        "/v1/channels/rollback",
        json={
            "name": NAME,
            "channel": "production",
            "reason": "x",
            "digest": str(digests(never).blake3),
        },
        headers=api.auth(Role.GOVERNOR),
    )
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/invalid-rollback")
    no_reason = api.client.post(
        "/v1/channels/rollback",
        json={"name": NAME, "channel": "production", "reason": ""},
        headers=api.auth(Role.GOVERNOR),
    )
    assert no_reason.status_code == 400
    pointers = api.client.get("/v1/channels", params={"name": NAME}, headers=api.auth()).json()
    assert [(p["channel"], p["digest"]) for p in pointers] == [
        ("production", str(digests(raws[0]).blake3))
    ]
    events: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params = {"name": NAME, "channel": "production", "limit": "2"}
        page = api.client.get(
            "/v1/channels/history",
            params={**params, **({"cursor": cursor} if cursor else {})},
            headers=api.auth(Role.READER),
        ).json()
        events += page["events"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["action"] for e in events] == [
        "rollback",
        "rollback",
        "promote",
        "promote",
        "promote",
    ]
    assert events[0]["reason"] == "older is safer"
    assert all(e["by"] for e in events)
    for event in events:
        entry = api.client.get(
            "/v1/log/entries",
            params={"start": event["log_index"], "end": event["log_index"] + 1},
            headers=api.auth(),
        ).json()["entries"][0]
        logged = json.loads(base64.b64decode(entry["entry"]))
        assert logged["kind"] == f"channel.{event['action']}"
        assert logged["to"] == event["to_digest"]


def test_promoting_an_artifact_under_another_name_is_refused(api: Api) -> None:
    raw = push_model(api, "v1")
    r = api.client.post(
        "/v1/channels/promote",
        json={
            "name": "veid/other",
            "channel": "production",
            "digest": str(digests(raw).blake3),
            "reason": "oops",
        },
        headers=api.auth(Role.GOVERNOR),
    )
    assert r.status_code == 400


def test_the_policy_in_force_is_logged_when_it_changes(
    deployment: Deployment, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_bytes(POLICY)

    def logged_versions() -> list[str]:
        services = deployment.services()
        return [
            json.loads(e.entry)["version"]
            for e in services.log.entries(0, 100)
            if e.kind == "policy.changed"
        ]

    for _ in range(2):  # the same policy, started twice: logged once
        with deployment.client(RELIQUARY_POLICY_FILE=str(policy)):
            pass
    assert len(logged_versions()) == 1
    policy.write_bytes(POLICY.replace(b"min = 2", b"min = 1"))
    with deployment.client(RELIQUARY_POLICY_FILE=str(policy)):
        pass
    versions = logged_versions()
    assert len(versions) == 2 and versions[0] != versions[1]


def test_a_revoked_artifact_never_goes_to_a_channel_again(api: Api) -> None:
    v1, v2, v3 = (push_model(api, f"v{i}") for i in (1, 2, 3))
    for raw in (v1, v2):
        assert promote(api, raw).status_code == 200
    revoke = api.client.post(
        f"/v1/artifacts/{digests(v1).blake3}/revoke",
        json={"reason": "biased on region X"},
        headers=api.auth(Role.GOVERNOR),
    )
    assert revoke.status_code == 200
    assert revoke.json()["revoked_reason"] == "biased on region X"
    again = api.client.post(
        f"/v1/artifacts/{digests(v1).blake3}/revoke",
        json={"reason": "twice"},
        headers=api.auth(Role.GOVERNOR),
    )
    assert again.json()["revoked_reason"] == "biased on region X"  # the first revocation stands
    assert unmet(status(api, v1)) == {"not_revoked"}
    assert promote(api, v1).status_code == 409
    back = api.client.post(
        "/v1/channels/rollback",
        json={"name": NAME, "channel": "production", "reason": "v2 broke"},
        headers=api.auth(Role.GOVERNOR),
    )
    assert back.status_code == 409  # the previous digest, v1, is revoked
    assert "revoked" in back.json()["detail"]
    assert promote(api, v3).status_code == 200  # others are unaffected
    kinds = [
        json.loads(base64.b64decode(e["entry"]))["kind"]
        for e in api.client.get(
            "/v1/log/entries", params={"start": 0, "end": 100}, headers=api.auth()
        ).json()["entries"]
    ]
    assert kinds.count("artifact.revoked") == 1
    # the bytes stay available: revocation is a policy fact, not a deletion
    assert api.client.get(f"/v1/artifacts/{digests(v1).blake3}", headers=api.auth()).content == v1
