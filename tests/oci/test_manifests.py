"""Pushing and pulling manifests as skopeo, oras and docker do (distribution-spec v1.1
"Pushing Manifests", "Pulling manifests"; the conformance suite's push and pull
workflows): exact bytes back under the media type they were pushed as, every
referenced blob and child checked, tags immutable, nothing kept from a refused push."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from registry.core.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from registry.core.roles import Role
from registry.db.engine import make_session_factory
from registry.domain.oci.repositories import OciRepository
from tests.conftest import Api, Deployment
from tests.support.api import log_size
from tests.support.api import publish as publish_model
from tests.support.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    MEDIA_TYPES,
    OCI_CONFIG,
    OCI_LAYER,
    descriptor,
    image_manifest,
    index_manifest,
    manifest_bytes,
    oci_error,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)

NAME = "library/app"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def push_index(api: Api, media_type: str, tag: str, name: str = NAME) -> tuple[bytes, bytes]:
    """Push one child image manifest by digest, then an index of ``media_type`` over it
    under ``tag``; (index bytes, child bytes)."""
    child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    config, layer = f"config {tag}".encode(), f"layer {tag}".encode()
    push_blob(api, name, config)
    push_blob(api, name, layer)
    docker = child_type == DOCKER_MANIFEST
    child = image_manifest(
        descriptor(config, DOCKER_CONFIG if docker else OCI_CONFIG),
        [descriptor(layer, DOCKER_LAYER if docker else OCI_LAYER)],
        child_type,
    )
    assert put_manifest(api, name, sha256(child), child, child_type).status_code == 201
    platform = {"architecture": "amd64", "os": "linux"}
    raw = index_manifest([descriptor(child, child_type, platform=platform)], media_type)
    r = put_manifest(api, name, tag, raw, media_type)
    assert r.status_code == 201, r.text
    return raw, child


def pushed(api: Api, media_type: str, tag: str) -> bytes:
    if media_type in (OCI_INDEX, DOCKER_LIST):
        return push_index(api, media_type, tag)[0]
    return push_image(api, NAME, tag, seed=tag, media_type=media_type)


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_each_media_type_comes_back_byte_for_byte_by_tag_and_digest(
    api: Api, media_type: str
) -> None:
    raw = pushed(api, media_type, "v1")
    digest = sha256(raw)
    reader = api.auth(Role.READER)
    # a schema 1 Accept changes nothing: the registry never converts a manifest
    headers = reader | {"accept": "application/vnd.docker.distribution.manifest.v1+json"}
    for reference in ("v1", digest):
        r = api.client.get(f"/v2/{NAME}/manifests/{reference}", headers=headers)
        assert r.status_code == 200, r.text
        assert r.content == raw
        assert r.headers["content-type"] == media_type  # no "; charset=" added
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["content-length"] == str(len(raw))
        assert r.headers["docker-distribution-api-version"] == "registry/2.0"
        r = api.client.head(f"/v2/{NAME}/manifests/{reference}", headers=reader)
        assert r.status_code == 200
        assert r.content == b""
        assert r.headers["content-type"] == media_type
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["content-length"] == str(len(raw))


def test_a_push_answers_201_with_location_and_digest(api: Api) -> None:
    config, layer = b"{}", b"layer"
    push_blob(api, NAME, config)
    push_blob(api, NAME, layer)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [descriptor(layer, OCI_LAYER)])
    for reference in ("latest", sha256(raw)):
        r = put_manifest(api, NAME, reference, raw)
        assert r.status_code == 201, r.text
        assert r.headers["location"] == f"/v2/{NAME}/manifests/{sha256(raw)}"
        assert r.headers["docker-content-digest"] == sha256(raw)
        assert "oci-subject" not in r.headers


def test_the_manifest_bytes_are_a_blob_of_the_repository(api: Api) -> None:
    raw = push_image(api, NAME, "v1")
    r = api.client.get(f"/v2/{NAME}/blobs/{sha256(raw)}", headers=api.auth(Role.READER))
    assert r.status_code == 200
    assert r.content == raw  # an image layout names it blobs/sha256/<hex>


def test_a_push_by_digest_is_pulled_by_digest_and_tags_nothing(api: Api) -> None:
    config, layer = b'{"a":1}', b"layer"
    push_blob(api, NAME, config)
    push_blob(api, NAME, layer)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [descriptor(layer, OCI_LAYER)])
    assert put_manifest(api, NAME, sha256(raw), raw).status_code == 201
    r = api.client.get(f"/v2/{NAME}/manifests/{sha256(raw)}", headers=api.auth(Role.READER))
    assert r.content == raw
    r = api.client.get(f"/v2/{NAME}/tags/list", headers=api.auth(Role.READER))
    assert r.json() == {"name": NAME, "tags": []}


def test_a_digest_reference_must_be_the_bytes_digest(api: Api) -> None:
    config = b"{}"
    push_blob(api, NAME, config)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [])
    other = sha256(raw + b" ")
    r = put_manifest(api, NAME, other, raw)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "DIGEST_INVALID"
    assert sha256(raw) in error["message"] and other in error["message"]
    for reference in (other, sha256(raw)):
        r = api.client.get(f"/v2/{NAME}/manifests/{reference}", headers=api.auth(Role.READER))
        assert r.status_code == 404


def test_every_missing_blob_and_child_is_manifest_blob_unknown(api: Api) -> None:
    config, layer, absent = b"{}", b"present layer", b"absent layer"
    push_blob(api, NAME, layer)
    raw = image_manifest(
        descriptor(config, OCI_CONFIG),
        [descriptor(layer, OCI_LAYER), descriptor(absent, OCI_LAYER)],
    )
    r = put_manifest(api, NAME, "v1", raw)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "MANIFEST_BLOB_UNKNOWN"
    missing = error["detail"]["missing"]
    assert [(m["field"], m["digest"]) for m in missing] == [
        ("config", sha256(config)),
        ("layers[1]", sha256(absent)),
    ]
    assert missing[1]["mediaType"] == OCI_LAYER and missing[1]["size"] == len(absent)
    # nothing was kept: the tag and the manifest are unknown
    r = api.client.get(f"/v2/{NAME}/manifests/v1", headers=api.auth(Role.READER))
    assert r.status_code == 404
    r = api.client.get(f"/v2/{NAME}/manifests/{sha256(raw)}", headers=api.auth(Role.READER))
    assert r.status_code == 404
    # once every blob is there, the same push is taken
    push_blob(api, NAME, config)
    push_blob(api, NAME, absent)
    assert put_manifest(api, NAME, "v1", raw).status_code == 201


def test_an_index_needs_its_children_in_the_repository(api: Api) -> None:
    child = push_image(api, "elsewhere/app", "v1")  # held by another repository only
    raw = index_manifest([descriptor(child, OCI_MANIFEST)])
    r = put_manifest(api, NAME, "multi", raw, OCI_INDEX)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert error["detail"]["missing"] == [
        {
            "field": "manifests[0]",
            "mediaType": OCI_MANIFEST,
            "digest": sha256(child),
            "size": len(child),
        }
    ]


def test_a_blob_held_by_another_repository_only_is_unknown_here(api: Api) -> None:
    config, layer = b"{}", b"layer"
    push_blob(api, "other/repo", config)
    push_blob(api, "other/repo", layer)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [descriptor(layer, OCI_LAYER)])
    assert put_manifest(api, "other/repo", "v1", raw).status_code == 201
    r = put_manifest(api, NAME, "v1", raw)
    assert r.status_code == 400
    assert oci_error(r)["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert len(oci_error(r)["detail"]["missing"]) == 2


def test_a_descriptor_size_must_be_its_contents(api: Api) -> None:
    config = b"{}"
    push_blob(api, NAME, config)
    raw = image_manifest({**descriptor(config, OCI_CONFIG), "size": 3}, [])
    r = put_manifest(api, NAME, "v1", raw)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "MANIFEST_INVALID"
    assert "config says 3 bytes" in error["message"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"schemaVersion": 1, "name": NAME, "tag": "v1", "fsLayers": []}, SCHEMA1),
        ({"schemaVersion": 1, "name": NAME, "tag": "v1", "fsLayers": []}, None),
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST}, SCHEMA1),
    ],
)
def test_docker_schema_1_is_refused_as_manifest_invalid(
    api: Api, body: dict[str, object], content_type: str | None
) -> None:
    r = put_manifest(api, NAME, "v1", manifest_bytes(body), content_type)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "MANIFEST_INVALID"  # skopeo then retries as schema 2
    assert "schema 1" in error["message"]


def test_content_type_and_media_type_must_agree(api: Api) -> None:
    config = b"{}"
    push_blob(api, NAME, config)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [], OCI_MANIFEST)
    r = put_manifest(api, NAME, "v1", raw, DOCKER_MANIFEST)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "MANIFEST_INVALID"
    assert f"send Content-Type: {OCI_MANIFEST}" in error["message"]
    # no mediaType in the body: the Content-Type says what it is
    bare = image_manifest(descriptor(config, OCI_CONFIG), [], media_type=None)
    r = put_manifest(api, NAME, "bare", bare, OCI_INDEX)  # an index has no config
    assert r.status_code == 400
    assert oci_error(r)["code"] == "MANIFEST_INVALID"
    assert (
        put_manifest(api, NAME, "bare", bare, f"{OCI_MANIFEST}; charset=utf-8").status_code == 201
    )
    r = api.client.get(f"/v2/{NAME}/manifests/bare", headers=api.auth(Role.READER))
    assert r.headers["content-type"] == OCI_MANIFEST
    # and neither: refused with what to send
    r = put_manifest(api, NAME, "none", bare, None)
    assert r.status_code == 400
    assert "Content-Type" in oci_error(r)["message"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"urls": ["https://example.com/layer.tar.gz"]}, "foreign"),
        ({"digest": "sha512:" + "a" * 128}, "sha256 only"),
        ({"size": -1}, "size"),
    ],
)
def test_descriptors_outside_what_the_registry_holds_are_refused(
    api: Api, change: dict[str, object], says: str
) -> None:
    config, layer = b"{}", b"layer"
    push_blob(api, NAME, config)
    push_blob(api, NAME, layer)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [descriptor(layer, OCI_LAYER) | change])
    r = put_manifest(api, NAME, "v1", raw)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "MANIFEST_INVALID"
    assert says in error["message"] and "layers[0]" in error["message"]


def test_malformed_json_is_manifest_invalid(api: Api) -> None:
    for raw in (b"", b"{", b'{"schemaVersion": 2, "schemaVersion": 2}', b"[]"):
        r = put_manifest(api, NAME, "v1", raw)
        assert r.status_code == 400, raw
        assert oci_error(r)["code"] == "MANIFEST_INVALID"


def test_a_manifest_over_the_limit_is_413_size_invalid(api: Api) -> None:
    raw = image_manifest({}, [], annotations={"pad": "x" * (4 * 2**20)})
    r = put_manifest(api, NAME, "v1", raw)
    assert r.status_code == 413
    assert oci_error(r)["code"] == "SIZE_INVALID"


def test_tags_are_immutable_same_manifest_201_another_409_denied(api: Api) -> None:
    first = push_image(api, NAME, "v1", seed="one")
    assert put_manifest(api, NAME, "v1", first).status_code == 201  # idempotent
    other = push_image(api, NAME, "v2", seed="two")
    r = put_manifest(api, NAME, "v1", other)
    assert r.status_code == 409
    error = oci_error(r)
    assert error["code"] == "DENIED"  # never MANIFEST_INVALID: skopeo would convert and retry
    assert sha256(first) in error["message"] and sha256(other) in error["message"]
    assert error["detail"]["existing_digest"] == sha256(first)
    r = api.client.get(f"/v2/{NAME}/manifests/v1", headers=api.auth(Role.READER))
    assert r.content == first


@pytest.mark.parametrize("tag", ["-v1", ".v1", "v" * 129, "v1+build"])
def test_a_tag_outside_the_grammar_is_tag_invalid(api: Api, tag: str) -> None:
    raw = push_image(api, NAME, "ok")
    r = put_manifest(api, NAME, tag, raw)
    assert r.status_code == 400
    assert oci_error(r)["code"] == "TAG_INVALID"


def test_a_tag_starting_with_an_underscore_cannot_be_an_artifact_version(api: Api) -> None:
    """OCI allows ``_private``; every tag here is also the version of artifact name@tag,
    and versions start with a letter or digit: refused naming the rule, nothing kept."""
    raw = push_image(api, NAME, "ok")
    r = put_manifest(api, NAME, "_private.Build-1", raw)
    assert r.status_code == 400
    error = oci_error(r)
    assert error["code"] == "TAG_INVALID"
    assert "letter or digit" in error["message"]
    r = api.client.get(f"/v2/{NAME}/manifests/_private.Build-1", headers=api.auth(Role.READER))
    assert r.status_code == 404


def test_a_reader_may_not_push_a_manifest(api: Api) -> None:
    config = b"{}"
    push_blob(api, NAME, config)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [])
    r = put_manifest(api, NAME, "v1", raw, role=Role.READER)
    assert r.status_code == 403
    assert oci_error(r)["code"] == "DENIED"
    r = api.client.put(
        f"/v2/{NAME}/manifests/v1", content=raw, headers={"content-type": OCI_MANIFEST}
    )
    assert r.status_code == 401
    r = api.client.get(f"/v2/{NAME}/manifests/v1", headers=api.auth(Role.READER))
    assert r.status_code == 404


def test_unknown_manifests_and_bad_references(api: Api) -> None:
    raw = push_image(api, "other/repo", "v1")
    reader = api.auth(Role.READER)
    for reference in ("v1", sha256(raw), sha256(b"nothing")):  # held elsewhere, or nowhere
        r = api.client.get(f"/v2/{NAME}/manifests/{reference}", headers=reader)
        assert r.status_code == 404
        assert oci_error(r)["code"] == "MANIFEST_UNKNOWN"
        r = api.client.head(f"/v2/{NAME}/manifests/{reference}", headers=reader)
        assert r.status_code == 404
        assert r.content == b""
    r = api.client.get(f"/v2/{NAME}/manifests/sha256:totallywrong", headers=reader)
    assert r.status_code == 400
    assert oci_error(r)["code"] == "DIGEST_INVALID"
    blake3 = "blake3:" + "0" * 64
    r = api.client.get(f"/v2/{NAME}/manifests/{blake3}", headers=reader)
    assert r.status_code == 400
    assert "sha256" in oci_error(r)["message"]


# -- a tag is also the image artifact name@tag -----------------------------------------


def artifact_files(api: Api, name: str, version: str) -> dict[str, Any]:
    """The files of artifact ``name@version`` (kind image), by path."""
    r = api.client.get(
        "/v1/resolve", params={"name": name, "version": version}, headers=api.auth(Role.READER)
    )
    assert r.status_code == 200, r.text
    artifact = r.json()
    assert artifact["kind"] == "image"
    r = api.client.get(f"/v1/artifacts/{artifact['digest']}", headers=api.auth(Role.READER))
    assert r.status_code == 200
    return {f["path"]: f for f in r.json()["files"]}


def pushed_entries(api: Api, name: str) -> list[dict[str, Any]]:
    """The log's ``artifact.pushed`` entries of artifacts named ``name``."""
    params = {"start": 0, "end": log_size(api)}
    r = api.client.get("/v1/log/entries", params=params, headers=api.auth())
    assert r.status_code == 200, r.text
    entries = [json.loads(base64.b64decode(e["entry"])) for e in r.json()["entries"]]
    return [e for e in entries if e["kind"] == "artifact.pushed" and e["name"] == name]


def test_a_tag_push_is_the_image_artifact_holding_its_layout(api: Api) -> None:
    raw, child = push_index(api, OCI_INDEX, "v1")
    doc = json.loads(child)
    expected = {sha256(raw), sha256(child), doc["config"]["digest"], doc["layers"][0]["digest"]}
    files = artifact_files(api, NAME, "v1")
    blobs = {p.removeprefix("blobs/sha256/") for p in files if p.startswith("blobs/")}
    assert {f"sha256:{h}" for h in blobs} == expected
    assert {"oci-layout", "index.json"} <= set(files)
    assert len(pushed_entries(api, NAME)) == 1  # the child, pushed by digest, is no artifact
    assert put_manifest(api, NAME, "v1", raw, OCI_INDEX).status_code == 201
    assert len(pushed_entries(api, NAME)) == 1  # an idempotent re-push logs nothing


def test_a_tag_whose_version_is_another_artifact_keeps_nothing(api: Api) -> None:
    """``name@tag`` already pushed through /v1 (a model): the tag is refused, 409 DENIED
    naming both digests, and neither the tag nor the manifest is kept."""
    publish_model(api, NAME, "v9", {"weights.bin": b"a model took this version"})
    config = b"{}"
    push_blob(api, NAME, config)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [])
    r = put_manifest(api, NAME, "v9", raw)
    assert r.status_code == 409, r.text
    error = oci_error(r)
    assert error["code"] == "DENIED"
    assert "blake3:" in error["message"]
    reader = api.auth(Role.READER)
    for reference in ("v9", sha256(raw)):
        r = api.client.get(f"/v2/{NAME}/manifests/{reference}", headers=reader)
        assert r.status_code == 404
    assert put_manifest(api, NAME, "v1", raw).status_code == 201


def test_rows_say_whether_this_write_bound_them(api: Api, deployment: Deployment) -> None:
    """What ``OciService._tag`` relies on when a concurrent push got past its first read:
    a tag already bound is reported as such (never bound twice)."""
    raw = push_image(api, NAME, "v1")
    now = datetime.now(UTC)
    with make_session_factory(deployment.engine)() as session:  # closed: rolled back
        repo = OciRepository(session)
        assert not repo.add_tag(NAME, "v1", sha256(raw).removeprefix("sha256:"), now)
        assert not repo.hold_manifest(NAME, sha256(raw).removeprefix("sha256:"), now)
        assert repo.add_tag(NAME, "v2", sha256(raw).removeprefix("sha256:"), now)


def test_bytes_without_a_media_type_keep_the_first_one_everywhere(api: Api) -> None:
    """The media type of bytes that name none comes from the first push's Content-Type;
    another repository pushing the same bytes as another type is refused, so a manifest
    is served alike everywhere (and an image layout's index.json agrees)."""
    config = b"{}"
    for name in (NAME, "other/app"):
        push_blob(api, name, config)
    raw = image_manifest(descriptor(config, OCI_CONFIG), [], media_type=None)
    assert put_manifest(api, NAME, sha256(raw), raw, OCI_MANIFEST).status_code == 201
    r = put_manifest(api, "other/app", "v1", raw, DOCKER_MANIFEST)
    assert r.status_code == 400
    assert oci_error(r)["code"] == "MANIFEST_INVALID"
    assert f"Content-Type: {OCI_MANIFEST}" in oci_error(r)["message"]
    r = api.client.get("/v2/other/app/manifests/v1", headers=api.auth(Role.READER))
    assert r.status_code == 404  # nothing of the refused push was kept, the tag neither
    assert put_manifest(api, "other/app", "v1", raw, OCI_MANIFEST).status_code == 201
