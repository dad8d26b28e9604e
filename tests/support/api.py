"""What the API tests do again and again, each written once: publish an artifact, register
a signing key, post a signed statement, read a channel's status, promote, read the log.

Every helper drives the in-process app through ``tests.conftest.Api`` over HTTP with a
role's token, as a client would. A helper whose name is a step (``publish``,
``new_key``, ``attest``, ``status``) asserts the answer that step needs and returns what
the test goes on with; a helper whose name is a request (``put_manifest``,
``register_key``, ``post_attestation``, ``promote``) returns the answer unchecked, for
the test to assert.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import httpx

from registry.core.checkpoint import NoteVerifier, open_checkpoint
from registry.core.keys import SigningKey
from registry.core.predicates import Predicate
from registry.core.roles import KeyRoleName, Role
from tests.conftest import Api, Deployment
from tests.support.content import NAME, digests, manifest_bytes
from tests.support.trust import signed, statement_about

TWO_WORKERS_POLICY = b"""
[channels.production]
reproducibility = [{ profile = "cpu-tensorflow", min_workers = 2 }]
"""
"""Promotion to production needs two distinct cpu-tensorflow workers that agree."""


# -- artifacts ---------------------------------------------------------------------------


def upload_blobs(api: Api, files: Mapping[str, bytes]) -> None:
    """PUT each of ``files``' contents as a blob; each is stored (201) or was (200)."""
    for data in files.values():
        r = api.client.put(f"/v1/blobs/{digests(data).blake3}", content=data, headers=api.auth())
        assert r.status_code in (200, 201)


def put_manifest(api: Api, raw: bytes) -> httpx.Response:
    """PUT the manifest ``raw`` with a publisher's token; the answer, unchecked."""
    return api.client.put("/v1/artifacts", content=raw, headers=api.auth())


def publish(
    api: Api,
    name: str,
    version: str,
    files: Mapping[str, bytes],
    *,
    expect: Collection[int] = (201,),
    **fields: Any,
) -> bytes:
    """Upload ``files`` and push their manifest (``fields`` added to it), which must
    answer one of ``expect``; the manifest's bytes."""
    upload_blobs(api, files)
    raw = manifest_bytes(name, version, dict(files), **fields)
    r = put_manifest(api, raw)
    assert r.status_code in expect, r.text
    return raw


def push_model(api: Api, version: str) -> bytes:
    """A new ``NAME`` model at ``version`` (its own weights, metrics r2 0.99); its manifest."""
    files = {"model.bin": f"weights {version}".encode()}
    return publish(api, NAME, version, files, metrics={"r2": 0.99})


def _push_inputs(api: Api) -> str:
    """The reference-inputs artifact the reproducible models name (pushed again, it is the
    same artifact: 200); its digest."""
    files = {"features.npy": b"reference rows"}
    raw = publish(api, NAME + "-inputs", "v1", files, expect=(200, 201), kind="reference-inputs")
    return str(digests(raw).blake3)


def push_reproducible(
    api: Api, version: str, engine: str | None = "tensorflow-savedmodel"
) -> bytes:
    """A ``NAME`` model at ``version`` naming its reference inputs, run by ``engine`` (no
    runtime when None: nothing can verify it); its manifest. Pushed again it answers 200."""
    files = {"saved_model.pb": f"graph {version}".encode()}
    runtime: dict[str, Any] = {"runtime": {"engine": engine}} if engine else {}
    reference = {"inputs": _push_inputs(api)}
    return publish(api, NAME, version, files, expect=(200, 201), reference=reference, **runtime)


def inputs_of(raw: bytes) -> str:
    """The reference-inputs digest the manifest ``raw`` names."""
    return str(json.loads(raw)["reference"]["inputs"])


# -- keys and signed statements ----------------------------------------------------------


def register_key(api: Api, key: SigningKey, role: KeyRoleName) -> httpx.Response:
    """Register ``key``'s public half with ``role`` (an admin's call); the answer, unchecked."""
    return api.client.post(
        "/v1/keys",
        json={"public_key": key.public.to_pem().decode(), "role": role},
        headers=api.auth(Role.ADMIN),
    )


def new_key(api: Api, role: KeyRoleName) -> SigningKey:
    """A new signing key, registered (201) with ``role``."""
    key = SigningKey.generate()
    assert register_key(api, key, role).status_code == 201
    return key


def post_attestation(
    api: Api, raw: bytes, envelope: bytes, role: Role = Role.PUBLISHER
) -> httpx.Response:
    """POST ``envelope`` as an attestation of the artifact ``raw`` with ``role``'s token;
    the answer, unchecked."""
    return api.client.post(
        f"/v1/artifacts/{digests(raw).blake3}/attestations",
        content=envelope,
        headers=api.auth(role),
    )


def attest(
    api: Api,
    raw: bytes,
    version: str,
    key: SigningKey,
    predicate: Predicate,
    role: Role = Role.PUBLISHER,
) -> None:
    """``key`` signs ``predicate`` about ``NAME@version`` (the manifest ``raw``), posted
    with ``role``'s token; it is accepted as new (201)."""
    envelope = signed(statement_about(raw, NAME, version, predicate), key)
    r = post_attestation(api, raw, envelope.to_json(), role)
    assert r.status_code == 201, r.text


# -- channels ----------------------------------------------------------------------------


def status(api: Api, raw: bytes) -> dict[str, Any]:
    """The artifact ``raw``'s status for the production channel, as a reader reads it (200)."""
    r = api.client.get(
        f"/v1/artifacts/{digests(raw).blake3}/status",
        params={"channel": "production"},
        headers=api.auth(Role.READER),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def unmet(body: dict[str, Any]) -> set[str]:
    """The requirements a status (or a policy-unmet problem) lists as not met."""
    return {r["requirement"] for r in body["requirements"] if not r["met"]}


def promote(api: Api, raw: bytes) -> httpx.Response:
    """A governor's promotion of the artifact ``raw`` (under the name its manifest holds)
    to production; the answer, unchecked."""
    return api.client.post(
        "/v1/channels/promote",
        json={
            "name": json.loads(raw)["name"],
            "channel": "production",
            "digest": str(digests(raw).blake3),
            "reason": "release",
        },
        headers=api.auth(Role.GOVERNOR),
    )


# -- jobs, metrics, the log --------------------------------------------------------------


def new_worker(deployment: Deployment) -> dict[str, str]:
    """The headers of a new worker token: each call is another worker."""
    return {"authorization": f"Bearer {deployment.token(Role.WORKER)}"}


def nondeterministic_total(api: Api) -> float:
    """``reliquary_nondeterministic_total`` summed over its labels, from /metrics."""
    text = api.client.get("/metrics").text
    lines = [x for x in text.splitlines() if x.startswith("reliquary_nondeterministic_total{")]
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines)


def log_size(api: Api) -> int:
    """The size of the log's checkpoint, its signature verified with the served log key."""
    note = api.client.get("/v1/log/checkpoint").content
    verifier = NoteVerifier.parse(api.client.get("/v1/log/key").text)
    return open_checkpoint(note, verifier).size
