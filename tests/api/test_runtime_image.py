"""A model pins the image it runs in by digest (ARCHITECTURE §12), and a channel's policy
may require that image to be held here, signed by a publisher and promoted.

Images are pushed over ``/v2`` (``tests.support.oci.seed_image``); a tag push is also the
image artifact ``NAME@TAG`` that is signed and promoted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.orm import Session

from registry.core.roles import Role
from registry.db.models import OciTagRow
from tests.conftest import Api, Deployment, api_with_policy
from tests.support.api import (
    log_size,
    new_key,
    post_attestation,
    promote,
    publish,
    put_manifest,
    status,
    unmet,
    upload_blobs,
)
from tests.support.content import NAME, digests, manifest_bytes
from tests.support.oci import SeededImage, seed_image
from tests.support.trust import PUBLISH, signed, statement_about

IMAGE = "veid/runtime"
WEIGHTS = {"saved_model.pb": b"graph pinned to its runtime"}

POLICY = b"""
[channels.production]
require_runtime_image = true
runtime_image_channel = "stable"

[channels.stable]
require_publisher_signature = true
"""
"""Production models must pin an image that is held here, publisher-signed, and what
``veid/runtime:stable`` holds; images reach ``stable`` with a publisher signature."""


def pinned_model(version: str, image: str) -> bytes:
    return manifest_bytes(
        NAME, version, WEIGHTS, runtime={"engine": "tensorflow-savedmodel", "image": image}
    )


def versions_of(api: Api, name: str) -> list[str]:
    r = api.client.get("/v1/artifacts", params={"name": name}, headers=api.auth(Role.READER))
    assert r.status_code == 200, r.text
    return sorted(a["version"] for a in r.json()["artifacts"])


def sign_image(api: Api, image: SeededImage) -> str:
    """A new publisher key signs publish/v1 about the image artifact ``image``; its keyid."""
    assert image.artifact is not None and image.tag is not None
    key = new_key(api, "publisher")
    envelope = signed(statement_about(image.artifact, image.name, image.tag, PUBLISH), key)
    r = post_attestation(api, image.artifact, envelope.to_json())
    assert r.status_code == 201, r.text
    return key.public.keyid


def promote_to(api: Api, raw: bytes, channel: str) -> httpx.Response:
    return api.client.post(
        "/v1/channels/promote",
        json={
            "name": json.loads(raw)["name"],
            "channel": channel,
            "digest": str(digests(raw).blake3),
            "reason": "release",
        },
        headers=api.auth(Role.GOVERNOR),
    )


def reasons(body: dict[str, Any]) -> dict[str, str]:
    return {r["requirement"]: r["reason"] for r in body["requirements"] if not r["met"]}


def test_a_runtime_image_named_by_tag_is_refused_saying_how_to_pin_it(api: Api) -> None:
    upload_blobs(api, WEIGHTS)
    before = log_size(api)
    r = put_manifest(api, pinned_model("v1", f"{IMAGE}:2.21"))
    assert r.status_code == 400, r.text
    assert r.json()["type"].endswith("/invalid-manifest")
    (problem,) = r.json()["problems"]
    assert "names tag '2.21'" in problem
    assert f"skopeo inspect --format '{{{{.Digest}}}}' docker://HOST/{IMAGE}:2.21" in problem
    assert versions_of(api, NAME) == [] and log_size(api) == before


def test_a_runtime_image_this_registry_does_not_hold_is_refused_until_pushed(api: Api) -> None:
    elsewhere = seed_image(api, "other/runtime", "2.21")
    pin = f"{IMAGE}@sha256:{elsewhere.sha256_hex}"  # held, but by another repository
    upload_blobs(api, WEIGHTS)
    before = log_size(api)
    for image in (f"{IMAGE}@sha256:{'ab' * 32}", pin):
        r = put_manifest(api, pinned_model("v1", image))
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["type"].endswith("/missing-runtime-image")
        assert body["image"] == image
        assert f"runtime.image pins {image}, which this registry does not hold" in body["detail"]
        assert "push the image first" in body["detail"]
        assert f"docker://HOST/{IMAGE}:TAG" in body["detail"]
    assert versions_of(api, NAME) == [] and log_size(api) == before

    held = seed_image(api, IMAGE, "2.21")
    assert held.sha256_hex == elsewhere.sha256_hex  # the same image, now in this repository
    r = put_manifest(api, pinned_model("v1", pin))
    assert r.status_code == 201, r.text
    stored = api.client.get(f"/v1/artifacts/{r.json()['digest']}", headers=api.auth(Role.READER))
    assert json.loads(stored.content)["runtime"]["image"] == pin
    untagged = seed_image(api, IMAGE, None, content="digest only")
    publish(api, NAME, "v2", WEIGHTS, runtime={"image": untagged.pin})  # 201: held, untagged


def test_the_policy_requires_a_pinned_signed_promoted_runtime_image(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, POLICY)
    try:
        unpinned = publish(api, NAME, "v1", WEIGHTS, runtime={"engine": "tensorflow-savedmodel"})
        assert reasons(status(api, unpinned)) == {
            name: "the manifest pins no runtime image: push a version whose runtime.image = "
            '"NAME@sha256:<hex>" (reliquary push --runtime image=NAME@sha256:<hex>)'
            for name in ("runtime_image", "runtime_image.signature", "runtime_image.channel")
        }
        refused = promote(api, unpinned)
        assert refused.status_code == 409
        assert unmet(refused.json()) == {
            "runtime_image",
            "runtime_image.signature",
            "runtime_image.channel",
        }

        untagged = seed_image(api, IMAGE, None, content="by digest")
        by_digest = publish(api, NAME, "v2", WEIGHTS, runtime={"image": untagged.pin})
        why = reasons(status(api, by_digest))
        assert set(why) == {"runtime_image.signature", "runtime_image.channel"}
        assert why["runtime_image.signature"].startswith(
            f"no image artifact {IMAGE}@TAG wraps sha256:{untagged.sha256_hex} (a tag"
        )

        image = seed_image(api, IMAGE, "2.21")
        model = publish(api, NAME, "v3", WEIGHTS, runtime={"image": image.pin})
        assert reasons(status(api, model)) == {
            "runtime_image.signature": "no accepted publish/v1 statement from a registered "
            f"publisher key on {IMAGE}@2.21",
            "runtime_image.channel": f"{IMAGE} has no channel 'stable': promote {IMAGE}@2.21 there",
        }
        assert promote_to(api, image.artifact or b"", "stable").status_code == 409  # unsigned

        signer = sign_image(api, image)
        newer = seed_image(api, IMAGE, "2.22", content="newer")
        sign_image(api, newer)
        assert newer.artifact is not None
        assert promote_to(api, newer.artifact, "stable").status_code == 200
        assert reasons(status(api, model)) == {
            "runtime_image.channel": f"{IMAGE}:stable holds {digests(newer.artifact).blake3}, "
            f"not an artifact of {image.pin}: promote {IMAGE}@2.21 there",
        }
        assert promote(api, model).status_code == 409

        assert image.artifact is not None
        assert promote_to(api, image.artifact, "stable").status_code == 200
        met = status(api, model)
        assert met["promotable"] is True
        assert {r["requirement"]: r["reason"] for r in met["requirements"]} == {
            "runtime_image": f"pins {image.pin}, held here",
            "runtime_image.signature": f"{IMAGE}@2.21 signed by publisher key {signer[:16]}…",
            "runtime_image.channel": f"{IMAGE}:stable holds {IMAGE}@2.21 "
            f"({digests(image.artifact).blake3})",
        }
        done = promote(api, model)
        assert done.status_code == 200, done.text
        # an image is its own runtime: the requirement binds models only
        assert status(api, image.artifact)["promotable"] is True
    finally:
        api.client.__exit__(None, None, None)


def test_a_signed_version_that_is_not_the_pinned_image_does_not_count(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The artifact ``NAME@TAG`` counts for a pin only when it wraps the pinned manifest,
    even where tag TAG of the database names that manifest (a row moved by hand: no
    request can move a tag, nor push an image artifact through /v1)."""
    api = api_with_policy(deployment, tmp_path, POLICY)
    try:
        image = seed_image(api, IMAGE, None)
        other = seed_image(api, IMAGE, "2.30", content="other")
        impostor = publish(
            api,
            IMAGE,
            "2.31",
            {"oci-layout": b"{}"},
            expect=(400,),
            kind="image",
            runtime={"engine": "oci-image", "manifest": f"sha256:{other.sha256_hex}"},
        )
        assert impostor  # /v1 refuses kind image: images come from /v2 tag pushes only
        with Session(deployment.engine) as session, session.begin():
            session.execute(
                update(OciTagRow)
                .where(OciTagRow.name == IMAGE, OciTagRow.tag == "2.30")
                .values(sha256=image.sha256_hex)
            )
        sign_image(api, other)
        model = publish(api, NAME, "v1", WEIGHTS, runtime={"image": image.pin})
        why = reasons(status(api, model))
        assert why["runtime_image.signature"].startswith(
            f"no image artifact {IMAGE}@TAG wraps sha256:{image.sha256_hex}"
        )
    finally:
        api.client.__exit__(None, None, None)
