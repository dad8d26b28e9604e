"""Images are artifacts: a tag push (``PUT /v2/<name>/manifests/<tag>``) is also the
artifact ``NAME@TAG`` of kind ``image``, whose files are the image's OCI image layout,
pushed and logged like any artifact, and pulled with ``reliquary pull`` into a directory
skopeo reads.

Every image is pushed as a client pushes it: its blobs with ``POST
/v2/<name>/blobs/uploads/?digest=``, an index's child manifest by digest, then the
manifest by tag. skopeo is required, never skipped: ``scripts/test`` installs it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy.orm import Session

from registry.core.digest import digest_bytes
from registry.core.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from registry.core.oci_layout import ImageDescriptor, build_image_layout, index_json
from registry.core.roles import Role
from registry.domain.oci.images import ImagePublisher
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
    image_artifact,
    oci_error,
    push_blob,
    put_manifest,
    sha256,
    tar_layer,
)
from tests.support.server import CLI, ServerProcess

NAME = "library/hello"
REF_NAME = "org.opencontainers.image.ref.name"
SKOPEO = shutil.which("skopeo")


# -- a tiny real image, pushed as a client pushes it -------------------------------------


@dataclass(frozen=True)
class Image:
    """A config and gzipped tar layers under an image manifest, and for an index or
    list type an index naming that one manifest (its ``child``)."""

    media_type: str
    manifest: bytes  # the tagged manifest's bytes
    child: bytes | None  # an index's image manifest
    blobs: tuple[bytes, ...]  # config and layers

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def top(self) -> ImageDescriptor:
        return ImageDescriptor(
            self.media_type, digest_bytes(self.manifest).sha256, len(self.manifest)
        )

    @property
    def contents(self) -> dict[str, bytes]:
        """Every blob of the image's layout by sha256 hex: manifests, config, layers."""
        every = (self.manifest, *([self.child] if self.child else []), *self.blobs)
        return {hashlib.sha256(data).hexdigest(): data for data in every}


def tiny_image(media_type: str = OCI_MANIFEST) -> Image:
    """A config and two gzipped tar layers under an image manifest of ``media_type``, or,
    for an index or list type, under an index naming that one (amd64) manifest."""
    docker = media_type in (DOCKER_MANIFEST, DOCKER_LIST)
    layers = [tar_layer({"hello.txt": b"hello\n"}), tar_layer({"etc/motd": b"tiny\n"})]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": [sha256(raw) for raw, _ in layers],
            },
        }
    ).encode()
    image_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = json.dumps(  # a pusher's own bytes: indented, not canonical
        {
            "schemaVersion": 2,
            "mediaType": image_type,
            "config": descriptor(config, DOCKER_CONFIG if docker else OCI_CONFIG),
            "layers": [descriptor(gz, DOCKER_LAYER if docker else OCI_LAYER) for _, gz in layers],
        },
        indent=3,
    ).encode()
    blobs = (config, *(gz for _, gz in layers))
    if media_type == image_type:
        return Image(media_type, manifest, None, blobs)
    platform = {"architecture": "amd64", "os": "linux"}
    top = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [descriptor(manifest, image_type, platform=platform)],
        }
    ).encode()
    return Image(media_type, top, manifest, blobs)


def push(api: Api, image: Image, tag: str, *, skip: bytes | None = None) -> httpx.Response:
    """Push ``image``'s blobs (all but ``skip``) and its child manifest by digest (201
    asserted), then its manifest under ``tag``; that last answer, unchecked."""
    for data in image.blobs:
        if data != skip:
            push_blob(api, NAME, data)
    if image.child is not None:
        child_type = DOCKER_MANIFEST if image.media_type == DOCKER_LIST else OCI_MANIFEST
        r = put_manifest(api, NAME, sha256(image.child), image.child, child_type)
        assert r.status_code == 201, r.text
    return put_manifest(api, NAME, tag, image.manifest, image.media_type)


def pushed(api: Api, image: Image, tag: str) -> None:
    r = push(api, image, tag)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == image.digest


# -- what the registry holds ---------------------------------------------------------------


def pushed_entries(api: Api) -> list[dict[str, Any]]:
    """The log's ``artifact.pushed`` entries."""
    params = {"start": 0, "end": log_size(api)}
    r = api.client.get("/v1/log/entries", params=params, headers=api.auth())
    assert r.status_code == 200, r.text
    entries = [json.loads(base64.b64decode(e["entry"])) for e in r.json()["entries"]]
    return [e for e in entries if e["kind"] == "artifact.pushed"]


def listed(api: Api) -> list[dict[str, Any]]:
    r = api.client.get("/v1/artifacts", params={"name": NAME}, headers=api.auth(Role.READER))
    assert r.status_code == 200, r.text
    artifacts: list[dict[str, Any]] = r.json()["artifacts"]
    return artifacts


def tags(api: Api) -> list[str]:
    r = api.client.get(f"/v2/{NAME}/tags/list", headers=api.auth(Role.READER))
    assert r.status_code == 200, r.text
    held: list[str] = r.json()["tags"]
    return held


def blob(api: Api, blake3: str) -> httpx.Response:
    return api.client.get(f"/v1/blobs/blake3:{blake3}", headers=api.auth(Role.READER))


def manifest_held(api: Api, reference: str) -> bool:
    r = api.client.get(f"/v2/{NAME}/manifests/{reference}", headers=api.auth(Role.READER))
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


# -- the artifact a tag push makes -----------------------------------------------------


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_a_tag_push_is_the_image_artifact_name_at_tag_pushed_and_logged(
    api: Api, media_type: str
) -> None:
    image = tiny_image(media_type)
    pushed(api, image, "v1")

    raw = image_artifact(api, NAME, "v1")
    digest = str(digest_bytes(raw).blake3)
    [artifact] = listed(api)  # the child, pushed by digest, is no artifact
    assert (artifact["name"], artifact["version"], artifact["kind"]) == (NAME, "v1", "image")
    assert artifact["digest"] == digest
    doc = json.loads(raw)
    assert doc["runtime"] == {
        "engine": "oci-image",
        "manifest": image.digest,
        "media_type": media_type,
    }
    # the layout: oci-layout, index.json naming the tagged manifest, every blob once
    files = {f["path"]: f for f in doc["files"]}
    blob_paths = {f"blobs/sha256/{hex_part}" for hex_part in image.contents}
    assert set(files) == {"oci-layout", "index.json"} | blob_paths
    served = {}
    for path, entry in files.items():
        r = blob(api, entry["blake3"])
        assert r.status_code == 200, path
        assert hashlib.sha256(r.content).hexdigest() == entry["sha256"]
        served[path] = r.content
    assert served["oci-layout"] == b'{"imageLayoutVersion":"1.0.0"}'
    assert json.loads(served["index.json"])["manifests"] == [
        {
            "mediaType": media_type,
            "digest": image.digest,
            "size": len(image.manifest),
            "annotations": {REF_NAME: "v1"},
        }
    ]
    for hex_part, data in image.contents.items():
        assert served[f"blobs/sha256/{hex_part}"] == data
    # the same layout any registry builds from this tag: the artifact is reproducible
    every = [digest_bytes(data) for data in image.contents.values()]
    assert raw == build_image_layout(NAME, "v1", image.top, every).manifest_bytes

    [entry] = pushed_entries(api)
    assert entry["digest"] == digest
    assert (entry["name"], entry["version"], entry["artifact_kind"]) == (NAME, "v1", "image")
    assert tags(api) == ["v1"]


def test_the_same_tag_again_is_idempotent_and_writes_nothing(api: Api) -> None:
    image = tiny_image()
    pushed(api, image, "v1")
    [first] = listed(api)
    size = log_size(api)
    pushed(api, image, "v1")  # 201 again, the same digest
    assert log_size(api) == size
    assert listed(api) == [first]
    assert tags(api) == ["v1"]
    # another tag of the same image is another artifact of the same blobs
    pushed(api, image, "v2")
    second = next(a for a in listed(api) if a["version"] == "v2")
    assert second["kind"] == "image"
    assert second["digest"] != first["digest"]
    assert sorted(a["version"] for a in listed(api)) == ["v1", "v2"]
    assert [e["version"] for e in pushed_entries(api)] == ["v1", "v2"]
    assert tags(api) == ["v1", "v2"]


def test_a_tag_starting_with_underscore_is_refused_before_anything_is_stored(api: Api) -> None:
    image = tiny_image()
    r = push(api, image, "_v1")  # a tag of the OCI grammar, no artifact version
    assert r.status_code == 400, r.text
    error = oci_error(r)
    assert error["code"] == "TAG_INVALID"
    assert "'_v1'" in error["message"]
    assert "[A-Za-z0-9][A-Za-z0-9._+-]{0,127}" in error["message"]
    assert listed(api) == [] and pushed_entries(api) == []
    assert tags(api) == []
    assert not manifest_held(api, "_v1") and not manifest_held(api, image.digest)
    never_stored = digest_bytes(index_json(image.top, "_v1")).blake3.hex
    assert blob(api, never_stored).status_code == 404


def test_a_version_pushed_through_v1_keeps_its_name_and_the_tag_is_refused(api: Api) -> None:
    model = publish_model(api, NAME, "v1", {"model.bin": b"weights"})
    image = tiny_image()
    r = push(api, image, "v1")
    assert r.status_code == 409, r.text
    error = oci_error(r)
    assert error["code"] == "DENIED"
    assert error["detail"]["existing_digest"] == str(digest_bytes(model).blake3)
    assert [a["kind"] for a in listed(api)] == ["model"]
    assert tags(api) == []
    assert not manifest_held(api, "v1") and not manifest_held(api, image.digest)
    pushed(api, image, "v2")  # the image itself was fine


def test_a_missing_layer_refuses_the_image(api: Api) -> None:
    image = tiny_image()
    layer = image.blobs[2]
    r = push(api, image, "v1", skip=layer)
    assert r.status_code == 400, r.text
    error = oci_error(r)
    assert error["code"] == "MANIFEST_BLOB_UNKNOWN"
    [missing] = error["detail"]["missing"]
    assert (missing["field"], missing["digest"]) == ("layers[1]", sha256(layer))
    assert listed(api) == [] and pushed_entries(api) == []
    assert tags(api) == []
    push_blob(api, NAME, layer)
    pushed(api, image, "v1")  # the layer pushed, the same manifest goes through


def test_a_failed_artifact_transaction_keeps_neither_the_artifact_nor_its_entry(
    api: Api, deployment: Deployment
) -> None:
    """``ImagePublisher``'s one-transaction invariant, driven directly: no request makes
    the transaction fail after its writes (only a concurrent push of another manifest
    under the tag does), so the caller's rows here raise once they are flushed."""
    image = tiny_image()
    for data in image.contents.values():
        push_blob(api, NAME, data)
    size = log_size(api)

    def fail_after_writing(session: Session) -> None:
        session.flush()  # the artifact and its log entry reached the database
        raise RuntimeError("the tag push failed after writing its rows")

    services = deployment.services()
    publisher = ImagePublisher(services.blobs, services.artifacts)
    every = [digest_bytes(data) for data in image.contents.values()]
    call = partial(publisher.publish, NAME, "v1", image.top, every, None, also=fail_after_writing)
    with pytest.raises(RuntimeError, match="after writing its rows"):
        anyio.run(call)
    assert listed(api) == [] and log_size(api) == size
    pushed(api, image, "v1")  # nothing was left half-written: the tag push goes through
    assert [a["version"] for a in listed(api)] == ["v1"]
    assert len(pushed_entries(api)) == 1


# -- reliquary pull NAME@TAG gives a layout skopeo reads ---------------------------------


def skopeo(*args: str) -> bytes:
    """Run skopeo (required: ``scripts/test`` installs it); its stdout, exit 0 asserted."""
    if SKOPEO is None:
        pytest.fail(
            "skopeo is required and missing: run ./scripts/test (it installs it) or "
            "apt-get install -y skopeo",
            pytrace=False,
        )
    done = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def assert_copied_byte_for_byte(image: Image, out: Path) -> None:
    """``skopeo copy … dir:OUT`` wrote the tagged manifest and every blob unchanged."""
    seen = set()
    for path in out.iterdir():
        if path.name == "version":
            continue
        if path.name == "manifest.json":
            assert path.read_bytes() == image.manifest
            seen.add(image.digest.removeprefix("sha256:"))
            continue
        hex_part = path.name.removesuffix(".manifest.json")  # an index's instance
        assert path.read_bytes() == image.contents[hex_part], path.name
        seen.add(hex_part)
    assert seen == set(image.contents)


@pytest.fixture
def server(deployment: Deployment) -> Iterator[ServerProcess]:
    with ServerProcess(deployment.env) as process:
        yield process


@pytest.mark.slow
def test_reliquary_pull_name_at_tag_gives_a_layout_skopeo_copies(
    api: Api, server: ServerProcess, tmp_path: Path
) -> None:
    """Each of the four manifest types, pushed over /v2 under its own tag and pulled by
    a reader. (skopeo 1.9.3 finds ``oci:DIR:TAG`` only for the OCI types: its lookup by
    ref name skips Docker media types in index.json; ``oci:DIR`` reads all four.)"""
    types = {
        "oci": OCI_MANIFEST,
        "docker": DOCKER_MANIFEST,
        "index": OCI_INDEX,
        "list": DOCKER_LIST,
    }
    images = {tag: tiny_image(media_type) for tag, media_type in types.items()}
    for tag, image in images.items():
        pushed(api, image, tag)
    env = {
        "RELIQUARY_URL": server.url,
        "RELIQUARY_TOKEN": api.tokens[Role.READER],
        "RELIQUARY_CACHE": str(tmp_path / "cache"),
        "RELIQUARY_CONFIG": str(tmp_path / "config.toml"),
    }
    for tag, image in images.items():
        out = tmp_path / tag
        pulled = subprocess.run(
            [CLI, "pull", f"{NAME}@{tag}", "-o", str(out), "--json"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert pulled.returncode == 0, pulled.stderr
        assert json.loads(pulled.stdout)["files"] == len(image.contents) + 2
        assert (out / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
        for hex_part, data in image.contents.items():
            assert (out / "blobs" / "sha256" / hex_part).read_bytes() == data

        assert skopeo("inspect", "--raw", f"oci:{out}") == image.manifest, image.media_type
        skopeo("copy", "--all", f"oci:{out}", f"dir:{tmp_path / f'{tag}-copied'}")
        assert_copied_byte_for_byte(image, tmp_path / f"{tag}-copied")
        if image.media_type == OCI_MANIFEST:
            inspected = json.loads(skopeo("inspect", f"oci:{out}"))
            assert inspected["Digest"] == image.digest
            layers = [d["digest"] for d in json.loads(image.manifest)["layers"]]
            assert inspected["Layers"] == layers
            assert skopeo("inspect", "--raw", f"oci:{out}:{tag}") == image.manifest
