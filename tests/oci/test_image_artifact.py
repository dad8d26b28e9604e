"""Images are artifacts: a tag is also the artifact ``NAME@TAG`` of kind ``image``, whose
files are the image's OCI image layout, pushed and logged like any artifact, and pulled
with ``reliquary pull`` into a directory skopeo reads.

Until the ``/v2`` manifest PUT lands, the tests publish through ``ImagePublisher`` from
``deployment.services()`` the way that PUT will, with the blobs uploaded over ``/v1``,
and ``also`` writes the manifest and tag rows the PUT will write with the artifact.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.core.digest import BlobDigests, digest_bytes
from registry.core.oci_layout import ImageDescriptor, build_image_layout, index_json
from registry.db.models import OciManifestRow, OciTagRow
from registry.domain.artifacts.services import PushResult
from registry.domain.oci.images import ImagePublisher
from registry.errors import ImmutableVersionError, InvalidTagError, MissingBlobsError
from tests.conftest import Api, Deployment
from tests.support.api import publish as publish_model
from tests.support.api import upload_blobs
from tests.support.server import CLI, ServerProcess, run_cli

NAME = "library/hello"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(
    SKOPEO is None, reason="skopeo is not installed (apt-get install -y skopeo)"
)


# -- a tiny real image ----------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """An image's blobs by sha256 hex (manifests included), and the tagged manifest."""

    blobs: dict[str, bytes]
    top: ImageDescriptor

    @property
    def digests(self) -> list[BlobDigests]:
        return [digest_bytes(b) for b in self.blobs.values()]

    @property
    def manifest(self) -> bytes:
        return self.blobs[self.top.digest.hex]


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    sha256 = hashlib.sha256(data).hexdigest()
    return {"mediaType": media_type, "digest": f"sha256:{sha256}", "size": len(data), **extra}


def _layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A tar of ``files`` with fixed metadata: (its bytes, the same gzipped)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def tiny_image(media_type: str = OCI_MANIFEST, greeting: str = "hello") -> Image:
    """A config and two gzipped tar layers under an image manifest of ``media_type``, or,
    for an index or list type, under an index naming that one (amd64) manifest."""
    docker = media_type in (DOCKER_MANIFEST, DOCKER_LIST)
    layers = [_layer({"hello.txt": f"{greeting}\n".encode()}), _layer({"etc/motd": b"tiny\n"})]
    diff_ids = [f"sha256:{hashlib.sha256(raw).hexdigest()}" for raw, _ in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_type = (
        "application/vnd.docker.container.image.v1+json"
        if docker
        else "application/vnd.oci.image.config.v1+json"
    )
    layer_type = (
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        if docker
        else "application/vnd.oci.image.layer.v1.tar+gzip"
    )
    image_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = json.dumps(  # a pusher's own bytes: indented, not canonical
        {
            "schemaVersion": 2,
            "mediaType": image_type,
            "config": _descriptor(config_type, config),
            "layers": [_descriptor(layer_type, gz) for _, gz in layers],
        },
        indent=3,
    ).encode()
    top = manifest
    if media_type in (OCI_INDEX, DOCKER_LIST):
        platform = {"architecture": "amd64", "os": "linux"}
        top = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "manifests": [_descriptor(image_type, manifest, platform=platform)],
            }
        ).encode()
    contents = (top, manifest, config, *(gz for _, gz in layers))
    blobs = {hashlib.sha256(c).hexdigest(): c for c in contents}
    return Image(blobs, ImageDescriptor(media_type, digest_bytes(top).sha256, len(top)))


# -- publishing, as the /v2 manifest PUT will --------------------------------------------


def tag_rows(image: Image, tag: str) -> Callable[[Session], None]:
    """What the ``/v2`` manifest PUT writes with the artifact: the manifest, its tag."""

    def write(session: Session) -> None:
        now = datetime.now(UTC)
        raw = image.manifest
        digests = digest_bytes(raw)
        if session.get(OciManifestRow, digests.sha256.hex) is None:
            session.add(
                OciManifestRow(
                    sha256=digests.sha256.hex,
                    blake3=digests.blake3.hex,
                    media_type=image.top.media_type,
                    size_bytes=len(raw),
                    artifact_type=None,
                    subject_sha256=None,
                    raw=raw,
                    created_at=now,
                )
            )
            session.flush()
        session.add(OciTagRow(name=NAME, tag=tag, sha256=digests.sha256.hex, created_at=now))

    return write


def publish(
    deployment: Deployment,
    image: Image,
    tag: str,
    also: Callable[[Session], None] | None = None,
) -> PushResult:
    # temporary: the /v2 manifest PUT calls this once it lands
    services = deployment.services()
    publisher = ImagePublisher(services.blobs, services.artifacts)
    call = partial(publisher.publish, NAME, tag, image.top, image.digests, None, also=also)
    return anyio.run(call)


def tags_held(deployment: Deployment) -> int:
    with Session(deployment.engine) as session:
        return session.scalar(select(func.count()).select_from(OciTagRow)) or 0


def pushed_entries(api: Api) -> list[dict[str, Any]]:
    r = api.client.get("/v1/log/entries", params={"start": 0, "end": 100}, headers=api.auth())
    assert r.status_code == 200, r.text
    entries = [json.loads(base64.b64decode(e["entry"])) for e in r.json()["entries"]]
    return [e for e in entries if e["kind"] == "artifact.pushed"]


def listed(api: Api) -> list[dict[str, Any]]:
    r = api.client.get("/v1/artifacts", params={"name": NAME}, headers=api.auth())
    assert r.status_code == 200, r.text
    artifacts: list[dict[str, Any]] = r.json()["artifacts"]
    return artifacts


# -- the artifact a tag makes ------------------------------------------------------------


def test_a_tag_is_the_image_artifact_name_at_tag_pushed_and_logged(
    api: Api, deployment: Deployment
) -> None:
    image = tiny_image()
    upload_blobs(api, image.blobs)
    result = publish(deployment, image, "v1", also=tag_rows(image, "v1"))
    assert result.created

    expected = build_image_layout(NAME, "v1", image.top, image.digests)
    digest = str(digest_bytes(expected.manifest_bytes).blake3)
    assert result.artifact.digest == digest
    [artifact] = listed(api)
    assert (artifact["name"], artifact["version"], artifact["kind"]) == (NAME, "v1", "image")
    assert artifact["digest"] == digest
    served = api.client.get(f"/v1/artifacts/{digest}", headers=api.auth())
    assert served.content == expected.manifest_bytes
    assert json.loads(served.content)["runtime"] == {
        "engine": "oci-image",
        "manifest": str(image.top.digest),
        "media_type": OCI_MANIFEST,
    }
    # the two files only the layout has are blobs now, byte for byte
    for data in expected.files.values():
        blob = api.client.get(f"/v1/blobs/{digest_bytes(data).blake3}", headers=api.auth())
        assert blob.status_code == 200
        assert blob.content == data
    [entry] = pushed_entries(api)
    assert entry["digest"] == digest
    assert (entry["name"], entry["version"], entry["artifact_kind"]) == (NAME, "v1", "image")
    assert tags_held(deployment) == 1  # committed with the artifact


def test_the_same_tag_again_is_idempotent_and_writes_nothing(
    api: Api, deployment: Deployment
) -> None:
    image = tiny_image()
    upload_blobs(api, image.blobs)
    first = publish(deployment, image, "v1", also=tag_rows(image, "v1"))
    ran: list[Session] = []
    again = publish(deployment, image, "v1", also=ran.append)
    assert not again.created
    assert again.artifact.digest == first.artifact.digest
    assert ran == []  # the tag row exists: nothing new runs
    assert len(pushed_entries(api)) == 1
    assert tags_held(deployment) == 1
    # another tag of the same image is another artifact of the same blobs
    second = publish(deployment, image, "v2", also=tag_rows(image, "v2"))
    assert second.created
    assert second.artifact.digest != first.artifact.digest
    assert sorted(a["version"] for a in listed(api)) == ["v1", "v2"]
    assert tags_held(deployment) == 2


def test_the_tag_row_and_the_artifact_commit_together_or_not_at_all(
    api: Api, deployment: Deployment
) -> None:
    image = tiny_image()
    upload_blobs(api, image.blobs)
    write_tag = tag_rows(image, "v1")

    def fail_after_writing(session: Session) -> None:
        write_tag(session)
        session.flush()  # the rows reached the database, inside the transaction
        raise RuntimeError("the tag push failed after writing its rows")

    with pytest.raises(RuntimeError, match="after writing its rows"):
        publish(deployment, image, "v1", also=fail_after_writing)
    assert listed(api) == []
    assert pushed_entries(api) == []
    assert tags_held(deployment) == 0
    # nothing was left half-written: the same push goes through
    assert publish(deployment, image, "v1", also=write_tag).created
    assert tags_held(deployment) == 1


def test_a_tag_starting_with_underscore_is_refused_before_anything_is_stored(
    api: Api, deployment: Deployment
) -> None:
    image = tiny_image()
    upload_blobs(api, image.blobs)
    ran: list[Session] = []
    with pytest.raises(InvalidTagError) as refused:
        publish(deployment, image, "_v1", also=ran.append)
    assert "'_v1'" in refused.value.detail
    assert "[A-Za-z0-9][A-Za-z0-9._+-]{0,127}" in refused.value.detail
    assert ran == []
    assert listed(api) == []
    never_stored = digest_bytes(index_json(image.top, "_v1")).blake3
    assert api.client.get(f"/v1/blobs/{never_stored}", headers=api.auth()).status_code == 404


def test_a_version_pushed_through_v1_keeps_its_name_and_the_tag_is_refused(
    api: Api, deployment: Deployment
) -> None:
    model = publish_model(api, NAME, "v1", {"model.bin": b"weights"})
    image = tiny_image()
    upload_blobs(api, image.blobs)
    ran: list[Session] = []
    with pytest.raises(ImmutableVersionError) as refused:
        publish(deployment, image, "v1", also=ran.append)
    assert refused.value.extra["existing_digest"] == str(digest_bytes(model).blake3)
    assert ran == []
    assert [a["kind"] for a in listed(api)] == ["model"]


def test_a_missing_layer_refuses_the_image(api: Api, deployment: Deployment) -> None:
    image = tiny_image()
    layer_hex = json.loads(image.manifest)["layers"][1]["digest"].removeprefix("sha256:")
    upload_blobs(api, {k: v for k, v in image.blobs.items() if k != layer_hex})
    with pytest.raises(MissingBlobsError) as refused:
        publish(deployment, image, "v1", also=tag_rows(image, "v1"))
    [missing] = refused.value.extra["missing"]
    assert missing["path"] == f"blobs/sha256/{layer_hex}"
    assert listed(api) == []
    assert tags_held(deployment) == 0


# -- skopeo reads the layout -------------------------------------------------------------


def skopeo(*args: str) -> bytes:
    assert SKOPEO is not None
    done = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def write_layout(image: Image, tag: str, root: Path) -> Path:
    """The layout the artifact ``NAME@tag`` holds, written as its files name it."""
    built = build_image_layout(NAME, tag, image.top, image.digests)
    for entry in built.manifest.files:
        path = root / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(built.files.get(entry.path) or image.blobs[entry.sha256])
    return root


def assert_copied_byte_for_byte(image: Image, out: Path) -> None:
    """``skopeo copy … dir:OUT`` wrote the top manifest and every blob unchanged."""
    seen = set()
    for path in out.iterdir():
        if path.name == "version":
            continue
        if path.name == "manifest.json":
            assert path.read_bytes() == image.manifest
            seen.add(image.top.digest.hex)
            continue
        hex_part = path.name.removesuffix(".manifest.json")  # an index's instance
        assert path.read_bytes() == image.blobs[hex_part], path.name
        seen.add(hex_part)
    assert seen == set(image.blobs)


@needs_skopeo
@pytest.mark.parametrize("media_type", [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
def test_skopeo_reads_the_layout_of_every_manifest_type(media_type: str, tmp_path: Path) -> None:
    """``oci:DIR`` reads all four types. (skopeo 1.9.3 finds ``oci:DIR:TAG`` only for the
    OCI types: its lookup by ref name skips Docker media types in index.json.)"""
    image = tiny_image(media_type)
    layout = write_layout(image, "v1", tmp_path / "layout")
    assert skopeo("inspect", "--raw", f"oci:{layout}") == image.manifest
    skopeo("copy", "--all", f"oci:{layout}", f"dir:{tmp_path / 'out'}")
    assert_copied_byte_for_byte(image, tmp_path / "out")


# -- reliquary pull NAME@TAG gives that layout -------------------------------------------


@pytest.fixture
def server(deployment: Deployment) -> Iterator[tuple[ServerProcess, str]]:
    """A live server on the deployment and a publisher's token."""
    run_cli(deployment.env, "db", "upgrade")
    token = run_cli(deployment.env, "token", "create", "--role", "publisher").strip()
    process = ServerProcess(deployment.env)
    process.start()
    try:
        yield process, token
    finally:
        process.stop()


@pytest.mark.slow
@needs_skopeo
def test_reliquary_pull_name_at_tag_gives_a_layout_skopeo_copies(
    server: tuple[ServerProcess, str], deployment: Deployment, tmp_path: Path
) -> None:
    process, token = server
    image = tiny_image()
    auth = {"authorization": f"Bearer {token}"}
    for data in image.blobs.values():
        url = f"{process.url}/v1/blobs/{digest_bytes(data).blake3}"
        assert httpx.put(url, content=data, headers=auth).status_code == 201
    publish(deployment, image, "v1", also=tag_rows(image, "v1"))

    out = tmp_path / "hello"
    env = {
        **os.environ,
        "RELIQUARY_URL": process.url,
        "RELIQUARY_TOKEN": token,
        "RELIQUARY_CACHE": str(tmp_path / "cache"),
        "RELIQUARY_CONFIG": str(tmp_path / "config.toml"),
    }
    pulled = subprocess.run(
        [CLI, "pull", f"{NAME}@v1", "-o", str(out), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["files"] == len(image.blobs) + 2
    assert (out / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    for hex_part, data in image.blobs.items():
        assert (out / "blobs" / "sha256" / hex_part).read_bytes() == data

    inspected = json.loads(skopeo("inspect", f"oci:{out}"))
    assert inspected["Digest"] == str(image.top.digest)
    assert inspected["Layers"] == [d["digest"] for d in json.loads(image.manifest)["layers"]]
    assert skopeo("inspect", "--raw", f"oci:{out}:v1") == image.manifest
    skopeo("copy", f"oci:{out}", f"dir:{tmp_path / 'copied'}")
    assert_copied_byte_for_byte(image, tmp_path / "copied")
