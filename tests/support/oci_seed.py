"""An image this registry holds, for the tests of runtime pins, made without ``/v2``.

STAND-IN, to be replaced: until the ``/v2`` manifest PUT lands (issue 13, another
slice), ``seed_image`` writes the state such a push leaves by hand. Its blobs are real
(PUT through ``/v1/blobs``, so they are in the blob store and ``blobs`` table); the OCI
rows (``oci_manifests``, ``oci_repository_blobs``, ``oci_repository_manifests``,
``oci_tags``) are inserted with SQLAlchemy on ``deployment.engine``; the image artifact
``NAME@TAG`` (kind ``image``, files = the image's OCI layout, ``runtime = {"engine":
"oci-image", "manifest": "sha256:…"}``) is pushed through the ordinary ``/v1`` push.
The integrator switches this to a real ``PUT /v2/<name>/manifests/<tag>`` (and a
digest-only push where ``tag`` is None); the tests using it should not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from registry.core.canonical import canonical_bytes
from registry.db.models import (
    OciManifestRow,
    OciRepositoryBlobRow,
    OciRepositoryManifestRow,
    OciTagRow,
)
from tests.conftest import Api, Deployment
from tests.support.api import publish, upload_blobs
from tests.support.content import digests

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"


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


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": str(digests(data).sha256), "size": len(data)}


def _layout(tag: str, manifest: bytes, blobs: list[bytes]) -> dict[str, bytes]:
    """The image's OCI image layout, as the image artifact's files."""
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [
            {
                **_descriptor(MANIFEST_MEDIA_TYPE, manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": canonical_bytes(index)}
    for data in [manifest, *blobs]:
        files[f"blobs/sha256/{digests(data).sha256.hex}"] = data
    return files


def seed_image(
    api: Api, deployment: Deployment, name: str, tag: str | None, *, content: str = "base"
) -> SeededImage:
    """Make repository ``name`` hold a one-layer image (``content`` varies its bytes),
    tagged ``tag`` unless None; a tagged one is also the artifact ``name@tag``."""
    config = canonical_bytes(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    layer = f"layer of {content}".encode()
    manifest = canonical_bytes(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        }
    )
    upload_blobs(api, {"config": config, "layer": layer, "manifest": manifest})
    now = datetime.now(UTC)
    sha256_hex = digests(manifest).sha256.hex
    # stand-in for PUT /v2/<name>/manifests/<tag>: the rows that push writes
    with Session(deployment.engine) as session, session.begin():
        if session.get(OciManifestRow, sha256_hex) is None:
            session.add(
                OciManifestRow(
                    sha256=sha256_hex,
                    blake3=digests(manifest).blake3.hex,
                    media_type=MANIFEST_MEDIA_TYPE,
                    size_bytes=len(manifest),
                    artifact_type=None,
                    subject_sha256=None,
                    raw=manifest,
                    created_at=now,
                )
            )
            session.flush()
        for data in (config, layer, manifest):
            session.merge(OciRepositoryBlobRow(name=name, blake3=digests(data).blake3.hex))
        session.merge(OciRepositoryManifestRow(name=name, sha256=sha256_hex, created_at=now))
    if tag is None:
        return SeededImage(name, None, manifest, None)
    tag_image(deployment, name, tag, sha256_hex)
    artifact = publish(
        api,
        name,
        tag,
        _layout(tag, manifest, [config, layer]),
        kind="image",
        runtime={"engine": "oci-image", "manifest": f"sha256:{sha256_hex}"},
    )
    return SeededImage(name, tag, manifest, artifact)


def tag_image(deployment: Deployment, name: str, tag: str, sha256_hex: str) -> None:
    """Stand-in for the tag row of ``PUT /v2/<name>/manifests/<tag>``: ``name:tag`` names
    the manifest ``sha256_hex`` (which ``name`` must hold)."""
    with Session(deployment.engine) as session, session.begin():
        session.add(OciTagRow(name=name, tag=tag, sha256=sha256_hex, created_at=datetime.now(UTC)))
