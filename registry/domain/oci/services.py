"""OCI repositories: what each holds, manifests, tags and referrers.

Invariants:
- A repository holds a blob once it was uploaded or mounted into it, or named by a
  manifest pushed there; it holds a manifest once pushed there. Nothing is ever
  removed, so what this process has seen held stays held (a positive cache).
- Blobs are the registry's one blob store (``BlobService``): an OCI blob is the same
  content-addressed blob as a ``/v1`` file, named by its sha256.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache
from sqlalchemy.orm import Session, sessionmaker

from registry.core.digest import Digest
from registry.domain.blobs.schemas import BlobInfo
from registry.domain.blobs.services import BlobService
from registry.domain.oci.repositories import OciRepository
from registry.errors import BlobNotFoundError

MAX_PAGE = 1000  # tags and repositories per page


class OciService:
    def __init__(
        self,
        blobs: BlobService,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
    ) -> None:
        self.blobs = blobs
        self._writes = writes
        self._reads = reads
        self._held: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=200_000)
        self._lock = threading.Lock()

    # -- blobs held by a repository -----------------------------------------------------
    def cached_blob(self, name: str, digest: Digest) -> BlobInfo | None:
        """The blob if this process has seen ``name`` hold it (no I/O: event-loop safe)."""
        info = self.blobs.cached(digest)
        if info is None:
            return None
        with self._lock:
            held = self._held.get((name, info.digests.blake3.hex))
        return info if held else None

    def find_blob(self, name: str, digest: Digest) -> BlobInfo | None:
        """The blob named by ``digest`` if repository ``name`` holds it, else None."""
        info = self.cached_blob(name, digest)
        if info is not None:
            return info
        info = self.blobs.find(digest)
        if info is None:
            return None
        blake3_hex = info.digests.blake3.hex
        with self._reads() as session:
            held = OciRepository(session).holds_blob(name, blake3_hex)
        if held:
            self.remember_held(name, [blake3_hex])
        return info if held else None

    def blob(self, name: str, digest: Digest) -> BlobInfo:
        """Raises BlobNotFoundError: no such blob, or not in this repository."""
        info = self.find_blob(name, digest)
        if info is None:
            raise BlobNotFoundError(
                f"repository {name} holds no blob {digest}; push it there, or mount it "
                f"with POST /v2/{name}/blobs/uploads/?mount={digest}&from=<repository>",
                digest=str(digest),
            )
        return info

    def hold_blobs(self, session: Session, name: str, infos: list[BlobInfo]) -> None:
        """Record, in the caller's transaction, that ``name`` holds ``infos``; call
        ``remember_held`` once it committed."""
        OciRepository(session).add_blobs(name, [i.digests.blake3.hex for i in infos])

    def add_blob(self, name: str, info: BlobInfo) -> None:
        """Record that ``name`` holds ``info`` (its own transaction)."""
        with self._writes.begin() as session:
            self.hold_blobs(session, name, [info])
        self.remember_held(name, [info.digests.blake3.hex])

    def remember_held(self, name: str, blake3_hexes: list[str]) -> None:
        with self._lock:
            for blake3_hex in blake3_hexes:
                self._held[(name, blake3_hex)] = True

    # -- repositories --------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        with self._reads() as session:
            return OciRepository(session).exists(name)

    def catalog(self, last: str, n: int) -> list[str]:
        """Repository names after ``last``, in byte order, at most ``n``."""
        with self._reads() as session:
            return OciRepository(session).names(last, n)
