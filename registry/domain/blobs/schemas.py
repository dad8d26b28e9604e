"""Blob and upload DTOs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from registry.core.digest import BlobDigests

# content never changes, but reads need a token: no shared cache may keep an answer
# (a proxy would hand it to callers the registry never authenticated)
IMMUTABLE = "private, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A published blob: both digests and its size."""

    digests: BlobDigests

    @property
    def etag(self) -> str:
        return f'"{self.digests.blake3}"'

    def headers(self) -> dict[str, str]:
        """Response headers every answer about this blob carries (HEAD, GET, 304)."""
        d = self.digests
        return {
            "etag": self.etag,
            "cache-control": IMMUTABLE,
            "accept-ranges": "bytes",
            "reliquary-blake3": str(d.blake3),
            "reliquary-sha256": str(d.sha256),
            "docker-content-digest": str(d.sha256),
        }


class Blob(msgspec.Struct):
    """The JSON answer to a blob upload."""

    blake3: str
    sha256: str
    size_bytes: int

    @classmethod
    def of(cls, info: BlobInfo) -> Blob:
        d = info.digests
        return cls(blake3=str(d.blake3), sha256=str(d.sha256), size_bytes=d.size_bytes)


@dataclass(frozen=True, slots=True)
class UploadSession:
    id: str
    offset_bytes: int
    expires_at: datetime
    token_id: str | None
    name: str | None = None  # the OCI repository of a /v2 session
