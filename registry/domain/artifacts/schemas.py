"""Artifact DTOs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from registry.core.digest import Digest
from registry.domain.blobs.schemas import IMMUTABLE


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """An artifact's exact manifest bytes and the identity derived from them."""

    digest: Digest  # blake3 of the bytes
    sha256: Digest
    raw: bytes
    name: str
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'

    def headers(self) -> dict[str, str]:
        """Response headers every answer with this manifest carries (GET, 304)."""
        return {
            "etag": self.etag,
            "cache-control": IMMUTABLE,
            "reliquary-blake3": str(self.digest),
            "reliquary-sha256": str(self.sha256),
        }


class Artifact(msgspec.Struct):
    digest: str
    sha256: str
    name: str
    version: str
    kind: str
    size_bytes: int
    created_at: datetime
    labels: dict[str, str] = {}
    revoked_at: datetime | None = None
    revoked_reason: str | None = None


class ArtifactRevoke(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


class ArtifactPage(msgspec.Struct):
    artifacts: list[Artifact]
    next_cursor: str | None
