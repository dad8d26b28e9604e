"""OCI DTOs: stored manifests, what a tag push hands its hooks, and the JSON bodies of
``tags/list``, ``_catalog`` and ``referrers`` (distribution-spec v1.1)."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from registry.core.digest import Digest
from registry.core.oci import OCI_INDEX


@dataclass(frozen=True, slots=True)
class StoredOciManifest:
    """A manifest as pushed: its exact bytes, their sha256 (the OCI digest) and blake3
    (the blob holding them), and the media type it was pushed as."""

    digest: Digest  # sha256
    blake3: Digest
    media_type: str
    size_bytes: int
    raw: bytes
    artifact_type: str | None
    subject: Digest | None

    def headers(self) -> dict[str, str]:
        """What every GET and HEAD of the manifest answers with."""
        return {
            "docker-content-digest": str(self.digest),
            "etag": f'"{self.digest}"',
            "content-length": str(self.size_bytes),
        }


@dataclass(frozen=True, slots=True)
class PushedManifest:
    """The answer to a manifest PUT: the digest, the subject it names (if any), and
    whether this push recorded anything new."""

    digest: Digest
    subject: Digest | None
    created: bool


@dataclass(frozen=True, slots=True)
class Page:
    """One page of names in byte order; ``more``: a next page exists (after the last)."""

    items: list[str]
    more: bool


class TagList(msgspec.Struct):
    name: str
    tags: list[str]


class Catalog(msgspec.Struct):
    repositories: list[str]


class ReferrerDescriptor(msgspec.Struct, omit_defaults=True, rename="camel"):
    """A referrer in the referrers index (its optional fields left out when unset)."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


class ReferrersIndex(msgspec.Struct, rename="camel", kw_only=True):
    """The referrers answer: an image index of the manifests whose subject is a digest."""

    schema_version: int = 2
    media_type: str = OCI_INDEX
    manifests: list[ReferrerDescriptor]
