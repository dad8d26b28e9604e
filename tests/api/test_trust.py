"""Signing keys, attestations and the transparency log, as governance and auditors see them."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from registry.core import merkle
from registry.core.checkpoint import NoteVerifier, open_checkpoint
from registry.core.dsse import Envelope, Signature
from registry.core.keys import SigningKey
from registry.core.predicates import ApprovalPredicate
from registry.core.roles import Role
from registry.db.engine import make_session_factory
from tests.conftest import Api, Deployment
from tests.support.api import log_size, post_attestation, publish, register_key
from tests.support.content import NAME, digests
from tests.support.trust import PUBLISH, signed, statement_about

FILES = {"model.bin": b"weights" * 100}


def test_keys_are_registered_listed_and_revoked_by_admins(api: Api) -> None:
    key = SigningKey.generate()
    r = register_key(api, key, "publisher")
    assert r.status_code == 201
    assert r.json()["keyid"] == key.public.keyid
    assert register_key(api, key, "publisher").status_code == 200  # idempotent
    conflict = register_key(api, key, "governor")
    assert conflict.status_code == 409
    assert conflict.json()["type"].endswith("/key-conflict")
    bad = api.client.post(
        "/v1/keys",
        json={"public_key": "-----BEGIN PUBLIC KEY-----\nnope\n", "role": "worker"},
        headers=api.auth(Role.ADMIN),
    )
    assert bad.status_code == 400
    listed = api.client.get("/v1/keys", headers=api.auth(Role.READER)).json()
    assert [k["keyid"] for k in listed] == [key.public.keyid]
    url = f"/v1/keys/{key.public.keyid}"
    assert api.client.get(url, headers=api.auth(Role.READER)).json()["revoked_at"] is None
    no_reason = api.client.post(f"{url}/revoke", json={"reason": " "}, headers=api.auth(Role.ADMIN))
    assert no_reason.status_code == 400
    revoked = api.client.post(
        f"{url}/revoke", json={"reason": "laptop stolen"}, headers=api.auth(Role.ADMIN)
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_reason"] == "laptop stolen"
    assert register_key(api, key, "publisher").status_code == 409  # revoked keys never come back
    kinds = [
        kind
        for kind in (
            json.loads(base64.b64decode(e["entry"]))["kind"]
            for e in api.client.get(
                "/v1/log/entries", params={"start": 0, "end": 10}, headers=api.auth()
            ).json()["entries"]
        )
        if kind != "policy.changed"  # the policy in force is logged at startup
    ]
    assert kinds == ["key.registered", "key.revoked"]


def test_a_signed_publish_statement_is_accepted_once_and_logged(api: Api) -> None:
    raw = publish(api, NAME, "v1", FILES)
    key = SigningKey.generate()
    register_key(api, key, "publisher")
    envelope = signed(statement_about(raw, NAME, "v1", PUBLISH), key)
    first = post_attestation(api, raw, envelope.to_json())
    assert first.status_code == 201
    body = first.json()
    assert body["keyid"] == key.public.keyid
    assert body["predicate_type"] == PUBLISH.TYPE
    again = post_attestation(api, raw, envelope.to_json())
    assert again.status_code == 200
    assert again.json()["log_index"] == body["log_index"]
    listed = api.client.get(
        f"/v1/artifacts/{digests(raw).sha256}/attestations", headers=api.auth(Role.READER)
    ).json()["attestations"]
    assert len(listed) == 1
    # what the registry hands back is the envelope as signed: it still verifies
    served = Envelope.from_json(json.dumps(listed[0]["envelope"]).encode())
    assert served.payload == envelope.payload


def test_every_bad_attestation_is_refused_and_changes_nothing(
    api: Api, deployment: Deployment
) -> None:
    raw = publish(api, NAME, "v1", FILES)
    other = publish(api, NAME, "v2", FILES)
    publisher, worker, stranger, revoked = (SigningKey.generate() for _ in range(4))
    register_key(api, publisher, "publisher")
    register_key(api, worker, "worker")
    register_key(api, revoked, "publisher")
    api.client.post(
        f"/v1/keys/{revoked.public.keyid}/revoke",
        json={"reason": "rotated"},
        headers=api.auth(Role.ADMIN),
    )
    about_raw = statement_about(raw, NAME, "v1", PUBLISH)
    good = signed(about_raw, publisher)
    tampered = Envelope(
        good.payload_type, good.payload.replace(b"ci@veid", b"ci@evil"), good.signatures
    )
    forged_sig = Envelope(
        good.payload_type,
        good.payload,
        (Signature(publisher.public.keyid, bytes(64)),),
    )
    approval = statement_about(raw, NAME, "v1", ApprovalPredicate("production"))
    cases: dict[str, tuple[bytes, int]] = {
        "statement about another artifact (replay)": (
            signed(statement_about(other, NAME, "v2", PUBLISH), publisher).to_json(),
            422,
        ),
        "unknown key": (signed(about_raw, stranger).to_json(), 422),
        "revoked key": (signed(about_raw, revoked).to_json(), 422),
        "wrong role for the predicate": (signed(approval, worker).to_json(), 422),
        "payload changed after signing": (tampered.to_json(), 422),
        "signature of zeros": (forged_sig.to_json(), 422),
        "not JSON": (b"\x00garbage", 400),
        "not an envelope": (b'{"payload": "x"}', 400),
    }
    before = log_size(api)
    for case, (body, status) in cases.items():
        r = post_attestation(api, raw, body)
        assert r.status_code == status, (case, r.text)
        assert r.headers["content-type"] == "application/problem+json", case
        assert r.json()["detail"], case
    assert log_size(api) == before
    listed = api.client.get(
        f"/v1/artifacts/{digests(raw).blake3}/attestations", headers=api.auth()
    ).json()["attestations"]
    assert listed == []
    missing = api.client.post(
        f"/v1/artifacts/blake3:{'0' * 64}/attestations",
        content=good.to_json(),
        headers=api.auth(),
    )
    assert missing.status_code == 404


def test_the_log_proves_inclusion_and_consistency(api: Api) -> None:
    verifier = NoteVerifier.parse(api.client.get("/v1/log/key").text)
    base = log_size(api)  # the startup policy entry
    sizes: list[tuple[int, bytes]] = []
    for version in ("v1", "v2", "v3", "v4", "v5"):
        publish(api, NAME, version, FILES)
        register_key(api, SigningKey.generate(), "worker")
        cp = open_checkpoint(api.client.get("/v1/log/checkpoint").content, verifier)
        sizes.append((cp.size, cp.root))
    size, root = sizes[-1]
    assert size == base + 10
    entries = api.client.get(
        "/v1/log/entries", params={"start": 0, "end": size}, headers=api.auth()
    ).json()["entries"]
    leaves = [merkle.leaf_hash(base64.b64decode(e["entry"])) for e in entries]
    pushed = [
        json.loads(base64.b64decode(e["entry"])) for e in entries if e["kind"] == "artifact.pushed"
    ]
    assert [p["artifact_kind"] for p in pushed] == ["model"] * 5  # the log's own "kind" stays apart
    assert [e["index"] for e in entries] == list(range(size))
    assert merkle.root_from_leaves(leaves) == root
    for index, leaf in enumerate(leaves):
        proof = api.client.get(
            "/v1/log/proof/inclusion", params={"index": index, "size": size}
        ).json()["hashes"]
        merkle.verify_inclusion(index, size, leaf, [base64.b64decode(h) for h in proof], root)
    for old_size, old_root in sizes[:-1]:
        proof = api.client.get(
            "/v1/log/proof/consistency", params={"from": old_size, "to": size}
        ).json()["hashes"]
        merkle.verify_consistency(
            old_size, size, old_root, root, [base64.b64decode(h) for h in proof]
        )
    future = api.client.get("/v1/log/proof/inclusion", params={"index": 0, "size": size + 1})
    assert future.status_code == 400


def test_concurrent_appends_leave_no_gaps_or_duplicates(deployment: Deployment) -> None:
    services = deployment.services()
    keys = [SigningKey.generate() for _ in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda k: services.keys.register(k.public.to_pem().decode(), Role.WORKER, ""),
                keys,
            )
        )
    entries = services.log.entries(0, 100)
    assert [e.index for e in entries] == list(range(24))
    logged = {json.loads(e.entry)["keyid"] for e in entries}
    assert logged == {k.public.keyid for k in keys}
    leaves = [merkle.leaf_hash(e.entry) for e in entries]
    assert services.log.root(24) == merkle.root_from_leaves(leaves)


def test_a_rolled_back_append_leaves_nothing_behind(deployment: Deployment) -> None:
    """Two appends in one transaction that rolls back, then others at the same indexes:
    the tree is the tree of the committed entries (no node of the lost ones survives)."""
    log = deployment.services().log
    writes = make_session_factory(deployment.engine)

    def append(kind: str, n: int) -> None:
        with writes.begin() as session:
            log.append(session, kind, {"n": n})

    for n in range(4):
        append("test.kept", n)
    with pytest.raises(RuntimeError), writes.begin() as session:
        log.append(session, "test.lost", {"n": 4})
        log.append(session, "test.lost", {"n": 5})  # completes a parent of the lost leaf 4
        raise RuntimeError("roll back")
    for n in range(4, 8):
        append("test.kept", n)
    entries = log.entries(0, 100)
    assert [json.loads(e.entry)["kind"] for e in entries] == ["test.kept"] * 8
    leaves = [merkle.leaf_hash(e.entry) for e in entries]
    for size in range(1, 9):
        assert log.root(size) == merkle.root_from_leaves(leaves[:size])
    stored = deployment.services().log  # nothing cached: only what is stored
    assert stored.root(8) == merkle.root_from_leaves(leaves)


def test_a_rewritten_entry_no_longer_proves_inclusion(api: Api, deployment: Deployment) -> None:
    for version in ("v1", "v2", "v3", "v4"):
        publish(api, NAME, version, FILES)
    verifier = NoteVerifier.parse(api.client.get("/v1/log/key").text)
    cp = open_checkpoint(api.client.get("/v1/log/checkpoint").content, verifier)
    with deployment.engine.begin() as conn:  # someone with database access rewrites history
        row = conn.execute(text("SELECT entry FROM log_entries WHERE idx = 2")).scalar_one()
        forged = bytes(row).replace(b"veid/trust-score", b"veid/trust-scorf")
        conn.execute(text("UPDATE log_entries SET entry = :e WHERE idx = 2"), {"e": forged})
    entry = api.client.get(
        "/v1/log/entries", params={"start": 2, "end": 3}, headers=api.auth()
    ).json()["entries"][0]
    proof = api.client.get("/v1/log/proof/inclusion", params={"index": 2, "size": cp.size}).json()[
        "hashes"
    ]
    leaf = merkle.leaf_hash(base64.b64decode(entry["entry"]))
    try:
        merkle.verify_inclusion(2, cp.size, leaf, [base64.b64decode(h) for h in proof], cp.root)
    except merkle.InvalidProofError:
        return
    raise AssertionError("a rewritten log entry still proved inclusion")
