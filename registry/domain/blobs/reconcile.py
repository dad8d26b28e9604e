"""Putting right what crashed processes left in the blob store, at start and periodically.

A process killed mid-request leaves nothing visible and nothing it acknowledged
half-done, but it can leave behind:

- orphaned blobs: bytes renamed (or copied) to their blob key, after they hashed
  to it, whose row never committed. They are rehashed (both digests) and their row
  recorded (``BlobService.record``), idempotently by digest, so a live request
  recording the same row at the same moment is harmless.
- damaged orphans: bytes at a blob key that do not hash to its name (a disk or a
  hand damaged them) and that no row names. No request ever serves them (a GET
  needs a row), and a push of that digest replaces them (a commit always rewrites
  the key) before it writes its row. They are removed once they have sat
  unchanged for ``corrupt_grace_seconds``.
- staged writes (partial blobs and upload parts no live writer owns): see
  ``BlobStore.purge_staging``; one idle for ``staged_idle_seconds`` is abandoned,
  and a finished one that a backend can date only by its start goes after the
  upload TTL (``lifetime_seconds``).
- resumable sessions past their expiry, and stored parts whose session is gone.

Removing damaged bytes races with a push of the same digest, on any replica:
the push may publish good bytes at the key and record its row between our "no
row" check and our delete. So the two sides take a per-digest guard in the
database every replica shares (``BlobRepository.guard``: a PostgreSQL advisory
lock; SQLite's write transactions are exclusive anyway):

- a push records its row under the shared guard, and only if the key still
  holds bytes of the row's size (``BlobService.record``); it publishes first,
  outside the guard;
- the reconciler removes under the exclusive guard (never waiting for it: a
  digest being recorded is left for the next pass), and only if no row exists
  and the bytes are still the ones it hashed (same ``modified_at``)
  (``BlobService.remove_unrecorded``).

So a removal either precedes a row's guarded section (the push then finds its
key empty, records nothing and answers 503: push again) or follows it (it then
sees the row and removes nothing); a row never names bytes that were removed.
A push's bytes removed because they landed between our last check and the
delete are only a retried request, never a lost or a wrong blob.

Every step is idempotent and safe beside live requests, so every replica (and
``reliquary-server fsck``) may run it at any time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from itertools import islice

from registry.core.digest import BlobDigests, DualHasher
from registry.domain.blobs.services import BlobService
from registry.domain.blobs.uploads import UploadService
from registry.metrics import Metrics
from registry.storage import StoredBlobMissingError

log = logging.getLogger("reliquary.blobs")

STAGED_WRITE_IDLE_SECONDS = 15 * 60.0  # a PUT that received no byte this long is abandoned
CORRUPT_GRACE_SECONDS = 5 * 60.0
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Examined:
    """What an unrecorded blob's bytes hashed to, and when they were written (the
    store's clock, read before hashing)."""

    blake3_hex: str
    digests: BlobDigests
    modified_at: float

    @property
    def verified(self) -> bool:
        return self.digests.blake3.hex == self.blake3_hex


@dataclass(slots=True)
class ReconcileReport:
    expired_uploads: int = 0  # sessions past their expiry, with their parts
    unowned_uploads: int = 0  # stored parts of sessions that are gone
    staged_writes: int = 0  # abandoned partial writes
    orphans_recorded: list[str] = field(default_factory=list)  # blake3 hex
    orphans_removed: list[str] = field(default_factory=list)  # did not hash to their name

    @property
    def changed(self) -> bool:
        return bool(
            self.expired_uploads
            or self.unowned_uploads
            or self.staged_writes
            or self.orphans_recorded
            or self.orphans_removed
        )

    def summary(self) -> str:
        return (
            f"recorded {len(self.orphans_recorded)} orphaned blobs, removed "
            f"{len(self.orphans_removed)} that did not verify, {self.staged_writes} abandoned "
            f"staged writes, {self.expired_uploads} expired uploads and the parts of "
            f"{self.unowned_uploads} finished ones"
        )


class StoreReconciler:
    def __init__(
        self,
        blobs: BlobService,
        uploads: UploadService,
        metrics: Metrics,
        *,
        staged_idle_seconds: float = STAGED_WRITE_IDLE_SECONDS,
        corrupt_grace_seconds: float = CORRUPT_GRACE_SECONDS,
    ) -> None:
        self._blobs = blobs
        self._store = blobs.store
        self._uploads = uploads
        self._metrics = metrics
        self._staged_idle_seconds = staged_idle_seconds
        self._corrupt_grace_seconds = corrupt_grace_seconds

    def run(self, *, orphans: bool = True) -> ReconcileReport:
        """One full pass (uploads, staged writes, then orphans unless ``orphans`` is
        False), counted in the metrics and logged when it changed anything.

        Raises StorageError or a database error; what it did before is kept (and
        counted), and the next pass resumes.
        """
        report = ReconcileReport()
        try:
            report.expired_uploads = self._uploads.expire()
            report.unowned_uploads = self._uploads.remove_unowned()
            report.staged_writes = self._store.purge_staging(
                self._staged_idle_seconds, lifetime_seconds=self._uploads.ttl_seconds
            )
            if orphans:
                self._reconcile_orphans(report)
        except Exception:
            self._metrics.reconcile_runs.labels("failed").inc()
            raise
        finally:
            self._count(report)
        self._metrics.reconcile_runs.labels("ok").inc()
        if report.changed:
            log.info("reconciled %s: %s", self._store.description, report.summary())
        return report

    def _count(self, report: ReconcileReport) -> None:
        counted = self._metrics.reconciled
        counted.labels("expired_upload").inc(report.expired_uploads)
        counted.labels("unowned_upload").inc(report.unowned_uploads)
        counted.labels("staged_write").inc(report.staged_writes)
        counted.labels("orphan_recorded").inc(len(report.orphans_recorded))
        counted.labels("orphan_removed").inc(len(report.orphans_removed))

    def _reconcile_orphans(self, report: ReconcileReport) -> None:
        listed = iter(self._store.list_blobs())
        while batch := list(islice(listed, _BATCH)):
            recorded = self._blobs.present(batch)
            for blake3_hex in batch:
                if blake3_hex in recorded:
                    continue
                examined = self.examine(blake3_hex)
                outcome = None if examined is None else self.settle(examined)
                if outcome == "recorded":
                    report.orphans_recorded.append(blake3_hex)
                elif outcome == "removed":
                    report.orphans_removed.append(blake3_hex)

    def examine(self, blake3_hex: str) -> Examined | None:
        """Rehash the bytes stored as ``blake3_hex``; None if a row names them (a request
        recorded them meanwhile) or they vanished. Reads, never writes."""
        if self._blobs.present([blake3_hex]):
            return None
        before = self._store.modified_at(blake3_hex)
        digests = self._rehash(blake3_hex)
        if before is None or digests is None:
            return None
        return Examined(blake3_hex, digests, before)

    def settle(self, examined: Examined) -> str | None:
        """Record bytes that verified, or remove settled damaged ones; what was done
        ("recorded", "removed"), if anything. Each under the digest's guard, so a push of
        that digest on any replica, between ``examine`` and now, is never undone."""
        blake3_hex = examined.blake3_hex
        if examined.verified:
            try:
                return "recorded" if self._blobs.record(examined.digests) else None
            except StoredBlobMissingError:
                return None  # removed meanwhile
        if time.time() - examined.modified_at < self._corrupt_grace_seconds:
            log.warning(
                "blob %s in %s hashes to %s and has no row; it will be removed unless a "
                "push replaces it",
                blake3_hex,
                self._store.description,
                examined.digests.blake3,
            )
            return None
        if not self._blobs.remove_unrecorded(blake3_hex, examined.modified_at):
            return None  # recorded, being recorded, or replaced since it was examined
        log.warning(
            "removed blob %s from %s: it hashed to %s and had no row",
            blake3_hex,
            self._store.description,
            examined.digests.blake3,
        )
        return "removed"

    def _rehash(self, blake3_hex: str) -> BlobDigests | None:
        """Both digests of the stored bytes; None if they vanished while being read."""
        hasher = DualHasher()
        try:
            for chunk in self._store.read(blake3_hex):
                hasher.update(chunk)
        except StoredBlobMissingError:
            return None
        return hasher.finish()
