"""What the interop tests (tests/interop) share: a live registry with tokens, and a small
real image written as an OCI image layout on disk, deterministic from its greeting."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.oci import tar_layer
from tests.support.server import ServerProcess

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Registry:
    """A live server and tokens of two roles."""

    process: ServerProcess
    publisher: str
    reader: str

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: how registry clients name it."""
        return self.process.url.removeprefix("http://")

    def manifest(self, name: str, reference: str) -> httpx.Response:
        """``GET /v2/NAME/manifests/REF`` with the reader's token as bearer."""
        return httpx.get(
            f"{self.process.url}/v2/{name}/manifests/{reference}",
            headers={"authorization": f"Bearer {self.reader}", "accept": OCI_MANIFEST},
            timeout=30,
        )


@dataclass(frozen=True)
class Layout:
    """An OCI image layout on disk: one image manifest tagged ``tag``."""

    path: Path
    tag: str
    blobs: dict[str, bytes]  # sha256 hex -> bytes: manifest, config, layers
    manifest: bytes

    @property
    def digest(self) -> str:
        return f"sha256:{hashlib.sha256(self.manifest).hexdigest()}"

    @property
    def layers(self) -> list[str]:
        return [d["digest"] for d in json.loads(self.manifest)["layers"]]


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
        "size": len(data),
    }


def write_layout(path: Path, tag: str, greeting: str) -> Layout:
    """A config and two gzipped tar layers (one holds ``greeting``) under an OCI image
    manifest, written as an OCI image layout at ``path`` with the manifest tagged ``tag``."""
    layers = [
        tar_layer({"hello.txt": f"{greeting}\n".encode()}),
        tar_layer({"etc/motd": b"interop\n" * 512}),
    ]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}" for raw, _ in layers],
            },
        }
    ).encode()
    manifest = json.dumps(  # a pusher's own bytes: indented, not canonical
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [
                _descriptor("application/vnd.oci.image.layer.v1.tar+gzip", gz) for _, gz in layers
            ],
        },
        indent=3,
    ).encode()
    blobs = {
        hashlib.sha256(b).hexdigest(): b for b in (manifest, config, *(gz for _, gz in layers))
    }
    (path / "blobs" / "sha256").mkdir(parents=True)
    for hex_part, data in blobs.items():
        (path / "blobs" / "sha256" / hex_part).write_bytes(data)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    top = {**_descriptor(OCI_MANIFEST, manifest), "annotations": {REF_NAME: tag}}
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return Layout(path, tag, blobs, manifest)
