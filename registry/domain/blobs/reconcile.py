"""Putting right what crashed processes left in the blob store, at start and periodically.

A process killed mid-request leaves nothing visible and nothing it acknowledged
half-done, but it can leave behind:

- orphaned blobs: bytes renamed (or copied) to their blob key, after they hashed
  to it, whose row never committed. They are rehashed (both digests) and their row
  recorded, idempotently by digest, so a live request recording the same row at
  the same moment is harmless. Bytes that do not hash to their name (a disk or a
  hand damaged them) are removed, but only once they have sat unchanged for
  ``corrupt_grace_seconds`` and still have no row: a live push of that digest
  replaces them with fresh bytes, which are then kept.
- staged writes (partial blobs and upload parts no live writer owns): see
  ``BlobStore.purge_staging``; one idle for ``staged_idle_seconds`` is abandoned.
- resumable sessions past their expiry, and stored parts whose session is gone.

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
from registry.domain.system.metrics import Metrics
from registry.storage import StoredBlobMissingError

log = logging.getLogger("reliquary.blobs")

STAGED_WRITE_IDLE_SECONDS = 15 * 60.0  # a PUT that received no byte this long is abandoned
CORRUPT_GRACE_SECONDS = 5 * 60.0
_BATCH = 1000


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
            report.staged_writes = self._store.purge_staging(self._staged_idle_seconds)
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
                outcome = self._reconcile_orphan(blake3_hex)
                if outcome == "recorded":
                    report.orphans_recorded.append(blake3_hex)
                elif outcome == "removed":
                    report.orphans_removed.append(blake3_hex)

    def _reconcile_orphan(self, blake3_hex: str) -> str | None:
        """Record or remove one blob that had no row; what was done, if anything."""
        if self._blobs.present([blake3_hex]):
            return None  # the request that published it has recorded it meanwhile
        before = self._store.modified_at(blake3_hex)
        digests = self._rehash(blake3_hex)
        if before is None or digests is None:
            return None  # removed meanwhile
        if digests.blake3.hex == blake3_hex:
            return "recorded" if self._blobs.record(digests) else None
        settled = time.time() - before >= self._corrupt_grace_seconds
        unchanged = self._store.modified_at(blake3_hex) == before
        if not (settled and unchanged) or self._blobs.present([blake3_hex]):
            log.warning(
                "blob %s in %s hashes to %s and has no row; it will be removed unless a "
                "push replaces it",
                blake3_hex,
                self._store.description,
                digests.blake3,
            )
            return None
        log.warning(
            "removing blob %s from %s: it hashes to %s and has no row",
            blake3_hex,
            self._store.description,
            digests.blake3,
        )
        self._store.delete(blake3_hex)
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
