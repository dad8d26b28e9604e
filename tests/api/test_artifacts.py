"""Publishing manifests: canonical bytes, complete blobs, immutable name@version."""

from __future__ import annotations

import json

from registry.core.canonical import canonical_bytes
from registry.core.roles import Role
from tests.conftest import Api, Deployment
from tests.support.api import put_manifest, upload_blobs
from tests.support.content import digests, manifest_bytes, manifest_dict

MODEL = {
    "saved_model.pb": b"graph-def" * 100,
    "variables/variables.data-00000-of-00001": b"\x00weights" * 1000,
    "variables/variables.index": b"index",
}


def test_push_fetch_and_resolve(api: Api) -> None:
    upload_blobs(api, MODEL)
    raw = manifest_bytes("veid/trust-score", "v20261122_093000", MODEL, labels={"team": "veid"})
    r = put_manifest(api, raw)
    assert r.status_code == 201
    body = r.json()
    d = digests(raw)
    assert body["digest"] == str(d.blake3)
    assert body["sha256"] == str(d.sha256)
    assert body["size_bytes"] == sum(len(v) for v in MODEL.values())
    assert r.headers["location"] == f"/v1/artifacts/{d.blake3}"
    for ref in (d.blake3, d.sha256):
        got = api.client.get(f"/v1/artifacts/{ref}", headers=api.auth(Role.READER))
        assert got.status_code == 200
        assert got.content == raw  # the exact bytes, never re-serialised
        assert got.headers["etag"] == f'"{d.blake3}"'
    resolved = api.client.get(
        "/v1/resolve",
        params={"name": "veid/trust-score", "version": "v20261122_093000"},
        headers=api.auth(Role.READER),
    )
    assert resolved.status_code == 200
    assert resolved.json()["digest"] == str(d.blake3)
    assert resolved.json()["labels"] == {"team": "veid"}


def test_same_manifest_again_is_idempotent(api: Api) -> None:
    upload_blobs(api, MODEL)
    raw = manifest_bytes("veid/trust-score", "v1", MODEL)
    assert put_manifest(api, raw).status_code == 201
    again = put_manifest(api, raw)
    assert again.status_code == 200
    assert again.json()["digest"] == str(digests(raw).blake3)


def test_other_content_under_a_taken_version_is_refused_naming_both(api: Api) -> None:
    upload_blobs(api, MODEL)
    first = manifest_bytes("veid/trust-score", "v1", MODEL)
    changed = {**MODEL, "saved_model.pb": b"retrained"}
    upload_blobs(api, changed)
    second = manifest_bytes("veid/trust-score", "v1", changed)
    assert put_manifest(api, first).status_code == 201
    r = put_manifest(api, second)
    assert r.status_code == 409
    problem = r.json()
    assert problem["type"].endswith("/version-taken")
    assert problem["existing_digest"] == str(digests(first).blake3)
    assert problem["pushed_digest"] == str(digests(second).blake3)
    assert (
        api.client.get(f"/v1/artifacts/{digests(second).blake3}", headers=api.auth()).status_code
        == 404
    )


def test_missing_blobs_are_listed_and_nothing_is_stored(api: Api) -> None:
    upload_blobs(api, {"saved_model.pb": MODEL["saved_model.pb"]})
    raw = manifest_bytes("veid/trust-score", "v2", MODEL)
    r = put_manifest(api, raw)
    assert r.status_code == 422
    missing = {m["path"] for m in r.json()["missing"]}
    assert missing == {"variables/variables.data-00000-of-00001", "variables/variables.index"}
    assert (
        api.client.get(f"/v1/artifacts/{digests(raw).blake3}", headers=api.auth()).status_code
        == 404
    )
    upload_blobs(api, MODEL)
    assert put_manifest(api, raw).status_code == 201


def test_file_entries_must_match_the_stored_blobs(api: Api) -> None:
    upload_blobs(api, MODEL)
    doc = manifest_dict("veid/trust-score", "v3", MODEL)
    doc["files"][0]["size"] += 1
    r = put_manifest(api, canonical_bytes(doc))
    assert r.status_code == 422
    assert r.json()["type"].endswith("/manifest-file-mismatch")
    assert r.json()["mismatched"][0]["path"] == doc["files"][0]["path"]


def test_non_canonical_manifest_shows_the_expected_bytes(api: Api) -> None:
    upload_blobs(api, MODEL)
    doc = manifest_dict("veid/trust-score", "v4", MODEL)
    r = put_manifest(api, json.dumps(doc, indent=1).encode())
    assert r.status_code == 400
    problem = r.json()
    assert problem["type"].endswith("/non-canonical-json")
    assert problem["expected"] == canonical_bytes(doc).decode()


def test_invalid_manifests_are_refused_with_reasons(api: Api) -> None:
    upload_blobs(api, MODEL)
    base = manifest_dict("veid/trust-score", "v5", MODEL)
    evil = {**base, "files": [{**base["files"][0], "path": "../../etc/cron.d/x"}]}
    cases: dict[str, bytes] = {
        "traversal": canonical_bytes(evil),
        "unknown field": canonical_bytes({**base, "signed_by": "me"}),
        "bad kind": canonical_bytes({**base, "kind": "weights"}),
        "not json": b"\x00\x01",
        "duplicate keys": b'{"kind":"model","kind":"image"}',
    }
    for case, raw in cases.items():
        r = put_manifest(api, raw)
        assert r.status_code == 400, case
        assert r.headers["content-type"] == "application/problem+json", case
        assert r.json()["detail"], case
    listed = api.client.get("/v1/artifacts", headers=api.auth())
    assert listed.json()["artifacts"] == []


def test_reference_inputs_must_exist(api: Api) -> None:
    inputs = {"inputs/x.npy": b"NUMPY-ish"}
    upload_blobs(api, {**MODEL, **inputs})
    ref_raw = canonical_bytes(
        {**manifest_dict("veid/trust-score-inputs", "v1", inputs), "kind": "reference-inputs"}
    )
    model = manifest_bytes(
        "veid/trust-score", "v6", MODEL, reference={"inputs": str(digests(ref_raw).blake3)}
    )
    r = put_manifest(api, model)
    assert r.status_code == 422
    assert r.json()["type"].endswith("/missing-reference")
    assert put_manifest(api, ref_raw).status_code == 201
    assert put_manifest(api, model).status_code == 201


def test_oversized_manifest_is_refused(deployment: Deployment) -> None:
    token = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    with deployment.client(RELIQUARY_MAX_MANIFEST_SIZE="1KiB") as client:
        r = client.put("/v1/artifacts", content=b"{" + b" " * 2000 + b"}", headers=token)
        assert r.status_code == 413
        assert r.json()["type"].endswith("/body-too-large")


def test_list_filters_and_paginates(api: Api) -> None:
    upload_blobs(api, MODEL)
    pushed = []
    for i in range(5):
        raw = manifest_bytes(
            "veid/trust-score" if i % 2 else "veid/other",
            f"v{i}",
            MODEL,
            labels={"parity": "odd" if i % 2 else "even"},
        )
        assert put_manifest(api, raw).status_code == 201
        pushed.append(str(digests(raw).blake3))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/artifacts", params=params, headers=api.auth()).json()
        seen += [a["digest"] for a in page["artifacts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(pushed)
    assert len(seen) == len(set(seen))
    by_name = api.client.get(
        "/v1/artifacts", params={"name": "veid/trust-score"}, headers=api.auth()
    )
    assert {a["version"] for a in by_name.json()["artifacts"]} == {"v1", "v3"}
    by_label = api.client.get("/v1/artifacts", params={"label": "parity=even"}, headers=api.auth())
    assert {a["version"] for a in by_label.json()["artifacts"]} == {"v0", "v2", "v4"}
    bad = api.client.get("/v1/artifacts", params={"cursor": "garbage!"}, headers=api.auth())
    assert bad.status_code == 400
    bad_kind = api.client.get("/v1/artifacts", params={"kind": "weights"}, headers=api.auth())
    assert bad_kind.status_code == 400


def test_resolve_unknown_version(api: Api) -> None:
    r = api.client.get(
        "/v1/resolve", params={"name": "veid/x", "version": "v9"}, headers=api.auth()
    )
    assert r.status_code == 404
    assert r.json()["type"].endswith("/artifact-not-found")
