"""The local content-addressed cache shared by every pull (and push resume state).

Layout under the root: ``blobs/blake3/<xx>/<hex>`` (complete blobs, verified
against size, blake3 and sha256 when they were admitted), ``partial/<hex>``
(interrupted downloads, resumed with a Range request), ``uploads/<hex>.json``
(resumable upload sessions of interrupted pushes). Two artifacts that share a
blob download it once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from registry.core.digest import is_hex64


class BlobCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("blobs/blake3", "partial", "uploads"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _check(blake3_hex: str) -> str:
        if not is_hex64(blake3_hex):
            raise ValueError(f"not a blake3 hex digest: {blake3_hex!r}")
        return blake3_hex

    def path(self, blake3_hex: str) -> Path:
        hex_ = self._check(blake3_hex)
        return self.root / "blobs" / "blake3" / hex_[:2] / hex_

    def partial_path(self, blake3_hex: str) -> Path:
        return self.root / "partial" / self._check(blake3_hex)

    def upload_session(self, blake3_hex: str) -> Path:
        return self.root / "uploads" / f"{self._check(blake3_hex)}.json"

    def contains(self, blake3_hex: str, size_bytes: int) -> bool:
        try:
            return self.path(blake3_hex).stat().st_size == size_bytes
        except FileNotFoundError:
            return False

    def admit(self, partial: Path, blake3_hex: str) -> Path:
        """Move a fully verified download into the cache (atomic rename); its path."""
        final = self.path(blake3_hex)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial.replace(final)
        return final

    def evict(self, blake3_hex: str) -> None:
        """Drop a cached blob that failed verification."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(blake3_hex))
