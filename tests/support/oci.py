"""What the ``/v2`` tests do again and again: put a blob in a repository, build OCI and
Docker manifests the way a client would, push them, read an OCI error body, and read
the image artifact ``NAME@TAG`` a tag push makes.

Manifests are built with ``json.dumps(..., indent=3)`` on purpose: bytes no serialiser
of the registry would produce, so a test that reads back exactly these bytes proves the
registry kept what was pushed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

import httpx

from registry.core.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from registry.core.roles import Role
from tests.conftest import Api
from tests.support.content import digests

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(data: bytes, media_type: str, **fields: Any) -> dict[str, Any]:
    """The descriptor of ``data`` (image-spec descriptor.md), ``fields`` added."""
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **fields}


def oci_error(answer: httpx.Response) -> dict[str, Any]:
    """The first error of an OCI error body, checking the body's shape."""
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    errors = answer.json()["errors"]
    assert isinstance(errors, list) and errors
    first: dict[str, Any] = errors[0]
    assert set(first) == {"code", "message", "detail"}
    return first


def tar_layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """A tar of ``files`` with fixed metadata: (its bytes, the same gzipped), as an image
    layer: the same ``files`` give the same bytes on every run."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def push_blob(api: Api, name: str, data: bytes) -> str:
    """Put ``data`` in repository ``name`` as a blob, in one request as a client may
    (``POST /v2/<name>/blobs/uploads/?digest=``); its sha256 digest."""
    digest = sha256(data)
    r = api.client.post(
        f"/v2/{name}/blobs/uploads/?digest={digest}", content=data, headers=api.auth()
    )
    assert r.status_code == 201, r.text
    return digest


def manifest_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=3).encode()


def image_manifest(
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    media_type: str | None = OCI_MANIFEST,
    **fields: Any,
) -> bytes:
    """An image manifest's bytes (``media_type`` None: no ``mediaType`` field)."""
    doc: dict[str, Any] = {"schemaVersion": 2}
    if media_type is not None:
        doc["mediaType"] = media_type
    doc |= {"config": config, "layers": layers, **fields}
    return manifest_bytes(doc)


def index_manifest(
    manifests: list[dict[str, Any]], media_type: str = OCI_INDEX, **fields: Any
) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests, **fields}
    return manifest_bytes(doc)


def put_manifest(
    api: Api,
    name: str,
    reference: str,
    raw: bytes,
    media_type: str | None = OCI_MANIFEST,
    role: Role = Role.PUBLISHER,
) -> httpx.Response:
    """PUT ``raw`` as ``Content-Type: media_type`` (None: no header); the answer, unchecked."""
    headers = api.auth(role)
    if media_type is not None:
        headers["content-type"] = media_type
    return api.client.put(f"/v2/{name}/manifests/{reference}", content=raw, headers=headers)


def push_image(
    api: Api,
    name: str,
    reference: str,
    *,
    seed: str = "",
    media_type: str = OCI_MANIFEST,
    **fields: Any,
) -> bytes:
    """Push a config and one layer (contents vary with ``seed``) to ``name``, then an image
    manifest naming them under ``reference`` (201 asserted); the manifest's bytes."""
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer of {name} {seed}".encode()
    push_blob(api, name, config)
    push_blob(api, name, layer)
    raw = image_manifest(
        descriptor(config, DOCKER_CONFIG if docker else OCI_CONFIG),
        [descriptor(layer, DOCKER_LAYER if docker else OCI_LAYER)],
        media_type,
        **fields,
    )
    r = put_manifest(api, name, reference, raw, media_type)
    assert r.status_code == 201, r.text
    return raw


def image_artifact(api: Api, name: str, tag: str) -> bytes:
    """The Reliquary manifest of the image artifact ``name@tag`` a tag push made (200,
    kind ``image`` asserted): the bytes signatures and promotions are about."""
    reader = api.auth(Role.READER)
    r = api.client.get("/v1/resolve", params={"name": name, "version": tag}, headers=reader)
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "image", r.json()
    r = api.client.get(f"/v1/artifacts/{r.json()['digest']}", headers=reader)
    assert r.status_code == 200, r.text
    return r.content


# -- images the runtime-pin tests pin --------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeededImage:
    name: str
    tag: str | None  # None: pushed by digest only (no tag, so no image artifact)
    manifest: bytes  # the OCI image manifest's exact bytes
    artifact: bytes | None  # the image artifact's Reliquary manifest (tagged images only)

    @property
    def sha256_hex(self) -> str:
        return digests(self.manifest).sha256.hex

    @property
    def pin(self) -> str:
        """What a model's ``runtime.image`` names: ``NAME@sha256:<hex>``."""
        return f"{self.name}@sha256:{self.sha256_hex}"


def seed_image(api: Api, name: str, tag: str | None, *, content: str = "base") -> SeededImage:
    """Push to repository ``name`` over ``/v2`` a one-layer image whose bytes depend on
    ``content`` only (the same ``content`` is the same manifest in any repository): its
    config and layer, then its manifest under ``tag``, or by digest when ``tag`` is None.
    A tag push is also the image artifact ``name@tag``, read back into ``artifact``."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layer = f"layer of {content}".encode()
    push_blob(api, name, config)
    push_blob(api, name, layer)
    raw = image_manifest(
        descriptor(config, OCI_CONFIG),
        [descriptor(layer, "application/vnd.oci.image.layer.v1.tar")],
    )
    r = put_manifest(api, name, sha256(raw) if tag is None else tag, raw)
    assert r.status_code == 201, r.text
    if tag is None:
        return SeededImage(name, None, raw, None)
    return SeededImage(name, tag, raw, image_artifact(api, name, tag))
