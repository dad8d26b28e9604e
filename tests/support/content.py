"""Building test content the way a client would: blobs, file entries, canonical manifests."""

from __future__ import annotations

from typing import Any

from registry.core.canonical import canonical_bytes
from registry.core.digest import BlobDigests, digest_bytes

NAME = "veid/trust-score"
"""The model the governance, reproducibility and worker tests publish (the README tour's)."""


def digests(data: bytes) -> BlobDigests:
    return digest_bytes(data)


def file_entry(path: str, data: bytes) -> dict[str, Any]:
    d = digest_bytes(data)
    return {"path": path, "size": len(data), "blake3": d.blake3.hex, "sha256": d.sha256.hex}


def manifest_dict(
    name: str, version: str, files: dict[str, bytes], **fields: Any
) -> dict[str, Any]:
    entries = [file_entry(path, files[path]) for path in sorted(files)]
    doc: dict[str, Any] = {
        "schema": "reliquary.manifest.v1",
        "kind": "model",
        "name": name,
        "version": version,
        "files": entries,
    }
    doc.update(fields)
    return doc


def manifest_bytes(name: str, version: str, files: dict[str, bytes], **fields: Any) -> bytes:
    return canonical_bytes(manifest_dict(name, version, files, **fields))
