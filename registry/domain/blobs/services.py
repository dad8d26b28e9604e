"""Blob service: verified ingest, lookups by either digest, ranged reads, fsck.

Invariants:
- Bytes are published only after they hashed to the claimed digest, and a blob
  row is written only over verified bytes: the ones this process has just published
  (a commit replaces whatever the key held, so bytes already at the key, perhaps
  damaged, are never trusted), an upload part it has just promoted, whose bytes were
  hashed as its writer received them (``publish_part``), or ones it has just
  rehashed (fsck, the reconciler).
- A row is written, under the digest's shared guard, only while the store still
  holds bytes of its size under the key; unrecorded bytes are removed only under
  the digest's exclusive guard, after checking that no row names them
  (``remove_unrecorded``). The guard lives in the database all replicas share
  (``BlobRepository.guard``), so no replica removes bytes that a row names and no
  row is written over bytes being removed.
- Concurrent pushes of one blob all succeed; it is stored once (the row insert
  is idempotent and publishing identical bytes twice is harmless).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio.to_thread
from cachetools import LRUCache
from sqlalchemy.orm import Session, sessionmaker

from registry.core.digest import BlobDigests, Digest, DualHasher
from registry.db.models import BlobRow
from registry.domain.blobs.ingest import hash_and_write
from registry.domain.blobs.repositories import BlobRepository
from registry.domain.blobs.schemas import BlobInfo
from registry.errors import BlobNotFoundError, DigestMismatchError
from registry.metrics import Metrics
from registry.storage import BlobStore, BlobWriter, StoredBlobMissingError


def _info(row: BlobRow) -> BlobInfo:
    return BlobInfo(
        BlobDigests(Digest.blake3(row.blake3), Digest.sha256(row.sha256), row.size_bytes)
    )


def _verify(claimed: Digest, digests: BlobDigests) -> None:
    """Raises DigestMismatchError unless ``digests`` are those ``claimed`` names."""
    if not digests.matches(claimed):
        raise DigestMismatchError(
            f"the {digests.size_bytes} bytes received hash to {digests.blake3} "
            f"({digests.sha256}), not to the claimed {claimed}; nothing was stored",
            claimed=str(claimed),
            received_blake3=str(digests.blake3),
            received_sha256=str(digests.sha256),
            received_size_bytes=digests.size_bytes,
        )


@dataclass(slots=True)
class FsckReport:
    checked: int = 0
    missing: list[str] = field(default_factory=list)  # row without bytes
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # bytes hash to something else
    orphaned: list[str] = field(default_factory=list)  # bytes without a row
    repaired: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupt or self.orphaned)


class BlobService:
    def __init__(
        self,
        store: BlobStore,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        metrics: Metrics,
        presign: Callable[[str], str] | None = None,
    ) -> None:
        """``presign``: blake3 hex -> a URL the client may GET the bytes from directly
        (an object store's presigned URL); None serves every byte through the API."""
        self.store = store
        self._writes = writes
        self._reads = reads
        self._metrics = metrics
        self._presign = presign
        self._cache: LRUCache[Digest, BlobInfo] = LRUCache(maxsize=100_000)
        self._cache_lock = threading.Lock()

    @property
    def redirects(self) -> bool:
        """Whether blob GETs are answered with a URL elsewhere (``redirect_url``)."""
        return self._presign is not None

    def redirect_url(self, info: BlobInfo) -> str:
        """Where the client fetches the blob instead (only when ``redirects``; may block:
        signing can refresh credentials)."""
        assert self._presign is not None
        self._metrics.redirects.inc()
        return self._presign(info.digests.blake3.hex)

    # -- lookups ----------------------------------------------------------------------
    def cached(self, digest: Digest) -> BlobInfo | None:
        """The blob if this process has seen it (no I/O: safe on the event loop)."""
        with self._cache_lock:
            return self._cache.get(digest)

    def find(self, digest: Digest) -> BlobInfo | None:
        """The blob named by either digest, or None. Found blobs are cached (immutable)."""
        cached = self.cached(digest)
        if cached is not None:
            return cached
        with self._reads() as session:
            row = BlobRepository(session).get(digest)
        if row is None:
            return None
        info = _info(row)
        with self._cache_lock:
            self._cache[info.digests.blake3] = info
            self._cache[info.digests.sha256] = info
        return info

    def get(self, digest: Digest) -> BlobInfo:
        """Raises BlobNotFoundError."""
        info = self.find(digest)
        if info is None:
            raise BlobNotFoundError(f"no blob {digest} in this registry", digest=str(digest))
        return info

    def present(self, blake3_hexes: list[str]) -> dict[str, BlobInfo]:
        with self._reads() as session:
            rows = BlobRepository(session).present(blake3_hexes)
        return {k: _info(r) for k, r in rows.items()}

    def read(self, info: BlobInfo, offset: int, length: int) -> Iterator[bytes]:
        """Stream a byte range of a published blob. Raises StoredBlobMissingError."""
        return self.store.read(info.digests.blake3.hex, offset, length)

    # -- ingest -----------------------------------------------------------------------
    async def ingest(self, claimed: Digest, chunks: AsyncIterator[bytes]) -> tuple[BlobInfo, bool]:
        """Receive, verify and publish a blob; (info, True) when it is new.

        A blob already stored is not written again, but the bytes sent are still
        hashed: a body that does not match its digest is refused either way.

        Raises:
            DigestMismatchError: the bytes hash to another digest; nothing stored.
            BodyTooLargeError, IncompleteBodyError: from the body stream; nothing stored.
            StorageError: the store failed; nothing visible.
        """
        existing = self.cached(claimed) or await anyio.to_thread.run_sync(self.find, claimed)
        if existing is not None:
            _verify(claimed, await hash_and_write(chunks, None))
            return existing, False
        started = time.perf_counter()
        writer = await anyio.to_thread.run_sync(self.store.open_writer)
        try:
            digests = await hash_and_write(chunks, writer)
            self._metrics.bytes_in.inc(digests.size_bytes)
            result = await anyio.to_thread.run_sync(self.publish, claimed, writer, digests)
        except BaseException:
            await anyio.to_thread.run_sync(writer.abort)
            self._metrics.upload_seconds.labels("refused").observe(time.perf_counter() - started)
            raise
        self._metrics.upload_seconds.labels("stored").observe(time.perf_counter() - started)
        return result

    def publish(
        self, claimed: Digest, writer: BlobWriter, digests: BlobDigests
    ) -> tuple[BlobInfo, bool]:
        """Commit verified bytes to the store (replacing what the key held), then record
        the row (idempotent). A blob already recorded is not published again.

        Raises DigestMismatchError, StorageError (StoredBlobMissingError: the bytes were
        removed before the row could be written; nothing was recorded, push again).
        """
        _verify(claimed, digests)
        existing = self.find(digests.blake3)
        if existing is not None:  # recorded bytes are verified bytes: keep them
            writer.abort()
            return existing, False
        writer.commit(digests.blake3.hex)
        return BlobInfo(digests), self.record(digests)

    def publish_part(
        self, claimed: Digest, upload_id: str, part_name: str, digests: BlobDigests
    ) -> tuple[BlobInfo, bool]:
        """Publish a stored upload part as the blob ``claimed`` without reading it again:
        ``digests`` are the part's own, hashed from the bytes its writer received
        (``UploadService.append``). The part is promoted to the blob key
        (``BlobStore.promote_part``) unless the blob is recorded already, then recorded.

        A commit that died after promoting left the part gone and the bytes at the key:
        those are rehashed, and recorded only if they are the part's.

        Raises DigestMismatchError (nothing published), StorageError
        (StoredBlobMissingError: the part is gone and its bytes are not at the key).
        """
        _verify(claimed, digests)
        existing = self.find(digests.blake3)
        if existing is not None:  # recorded bytes are verified bytes: keep them
            return existing, False
        try:
            self.store.promote_part(upload_id, part_name, digests.blake3.hex)
        except StoredBlobMissingError:
            if self._rehash(digests.blake3.hex) != digests:
                raise
        return BlobInfo(digests), self.record(digests)

    def record(self, digests: BlobDigests) -> bool:
        """Write the row of bytes the caller has published or rehashed under
        ``digests.blake3``; True when this call wrote it, False if it was there.

        Under the digest's shared guard, and only if the store still holds bytes of
        that size there (the reconciler may have removed them since: they were
        published over damaged bytes it was removing).

        Raises StoredBlobMissingError (nothing was recorded), StorageError.
        """
        blake3_hex = digests.blake3.hex
        row = BlobRow(
            blake3=blake3_hex,
            sha256=digests.sha256.hex,
            size_bytes=digests.size_bytes,
            created_at=datetime.now(UTC),
        )
        with self._writes.begin() as session:
            repo = BlobRepository(session)
            repo.guard(blake3_hex, exclusive=False)
            if self.store.size_of(blake3_hex) != digests.size_bytes:
                raise StoredBlobMissingError(
                    f"{digests.blake3} was removed from {self.store.description} before its "
                    "row was written (bytes that did not hash to that name were being "
                    "removed); nothing was recorded: push it again"
                )
            return repo.insert_if_absent(row)

    def remove_unrecorded(self, blake3_hex: str, modified_at: float) -> bool:
        """Remove the bytes stored as ``blake3_hex`` if no row names them and they are
        still the ones written at ``modified_at`` (which the caller found damaged);
        True when this call removed them.

        Under the digest's exclusive guard: False, removing nothing, when a request
        is recording that digest now, a row exists, or the bytes were replaced.
        Raises StorageError.
        """
        with self._writes.begin() as session:
            repo = BlobRepository(session)
            if not repo.guard(blake3_hex, exclusive=True):
                return False
            if repo.get(Digest.blake3(blake3_hex)) is not None:
                return False
            if self.store.modified_at(blake3_hex) != modified_at:
                return False
            self.store.delete(blake3_hex)
            return True

    # -- maintenance ------------------------------------------------------------------
    def fsck(self, *, deep: bool = False, repair: bool = False) -> FsckReport:
        """Compare rows with stored bytes; ``deep`` rehashes every blob.

        With ``repair``: orphaned bytes (published, row never written) get their row
        after a rehash proves them; corrupt or missing blobs are only reported.
        """
        report = FsckReport()
        known: set[str] = set()
        with self._reads() as session:
            for row in BlobRepository(session).all_blake3():
                known.add(row.blake3)
                report.checked += 1
                size = self.store.size_of(row.blake3)
                if size is None:
                    report.missing.append(row.blake3)
                elif size != row.size_bytes:
                    report.wrong_size.append(row.blake3)
                elif deep and self._rehash(row.blake3).blake3.hex != row.blake3:
                    report.corrupt.append(row.blake3)
        unrecorded = [h for h in self.store.list_blobs() if h not in known]
        # bytes published (and recorded) by a request while we read the rows are no orphans
        recorded_since = set(self.present(unrecorded))
        for blake3_hex in unrecorded:
            if blake3_hex in recorded_since:
                continue
            report.orphaned.append(blake3_hex)
            if repair:
                digests = self._rehash(blake3_hex)
                if digests.blake3.hex == blake3_hex:
                    try:
                        self.record(digests)
                    except StoredBlobMissingError:
                        continue  # removed meanwhile
                    report.repaired.append(blake3_hex)
        return report

    def _rehash(self, blake3_hex: str) -> BlobDigests:
        hasher = DualHasher()
        try:
            for chunk in self.store.read(blake3_hex):
                hasher.update(chunk)
        except StoredBlobMissingError:
            pass
        return hasher.finish()
