"""The blob storage protocol every backend implements.

Invariants every backend keeps (checked by ``tests/storage/test_conformance.py``,
which runs unchanged against each backend):

- A blob lives at a key derived from its blake3 hex only
  (``blobs/blake3/<hex[:2]>/<hex>``). It becomes visible there only through
  ``BlobWriter.commit``, atomically and durably; a reader never sees a partial
  blob. Committing replaces whatever the key held with the written bytes (which
  the caller verified): the store never trusts bytes already at a key, so bytes
  that do not hash to their name (a disk or a hand damaged them) are repaired by
  the next commit of that digest, never silently kept.
- The store never hashes: callers verify bytes before they ``commit``.
- Upload parts (resumable sessions) live under ``_uploads/<upload_id>/`` and are
  invisible to blob reads; ``delete_upload`` removes them all, unfinished ones too.
  A part becomes a blob only through ``promote_part``, as atomically as a commit.
- A process killed mid-write leaves its staged write behind, never a partial
  blob; ``purge_staging`` removes such leftovers and never a live writer's that
  is still receiving bytes.
- Backends translate their own exceptions: only ``StorageError`` subclasses
  escape. All methods are blocking; async callers run them in threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

READ_CHUNK_BYTES = 1024 * 1024

StoreClock = Callable[[], float]
"""Now in POSIX seconds: what ``purge_staging`` measures idleness against when a store is
given one (tests move it instead of sleeping). Without one, each store uses its own
clock: the host's for files, S3's for objects."""


class StorageError(Exception):
    """Base of every storage backend error."""


class StoredBlobMissingError(StorageError):
    """The database names a blob (or upload part) the store does not hold."""


class StorageUnavailableError(StorageError):
    """The backend could not be reached or refused the operation."""


class StorageFullError(StorageUnavailableError):
    """The store has no room for the bytes (its disk or quota is full); nothing was
    published and the staged bytes were discarded."""


class BlobWriter(Protocol):
    """Receives one blob's bytes into a staging area, then publishes or discards them."""

    def write(self, data: bytes | memoryview) -> None:
        """Append bytes. Raises StorageUnavailableError."""

    def commit(self, blake3_hex: str) -> None:
        """Make the written bytes durable and visible as ``blake3_hex``, replacing any
        bytes stored there before.

        Raises StorageUnavailableError. After commit the writer is closed.
        """

    def abort(self) -> None:
        """Discard everything written; never raises. Safe after commit."""


@runtime_checkable
class CachedReads(Protocol):
    """An optional capability of the iterator ``BlobStore.read`` returns.

    ``read_cached`` returns the next chunk only if it can be had without waiting
    for a disk (the page cache has it), ``None`` if it would wait; it raises
    ``StopIteration`` at the end, like ``next``. Async callers use it on the
    event loop and fall back to ``next`` in a thread.
    """

    def read_cached(self) -> bytes | None: ...


class BlobStore(Protocol):
    """Where blob bytes and in-progress upload parts live."""

    description: str

    def open_writer(self) -> BlobWriter:
        """Start a new staged blob."""

    def open_part_writer(self, upload_id: str, part_name: str) -> BlobWriter:
        """Start one part of a resumable upload; ``commit`` makes the part durable.

        The ``blake3_hex`` given to a part writer's commit is ignored.
        """

    def read_part(self, upload_id: str, part_name: str) -> Iterator[bytes]:
        """Stream a committed upload part. Raises StoredBlobMissingError."""

    def delete_part(self, upload_id: str, part_name: str) -> None:
        """Remove one upload part; missing is fine."""

    def promote_part(self, upload_id: str, part_name: str, blake3_hex: str) -> None:
        """Publish a committed upload part as the blob ``blake3_hex`` without the bytes
        passing through this process (a rename; a server-side copy), atomically and
        durably like ``BlobWriter.commit``, replacing whatever the key held. The caller
        verified that the part's bytes hash to ``blake3_hex``. The part may be gone
        afterwards: the caller then removes its upload.

        Raises StoredBlobMissingError (no such part; nothing was published),
        StorageUnavailableError.
        """

    def delete_upload(self, upload_id: str) -> None:
        """Remove every part of an upload; missing is fine."""

    def list_upload_ids(self) -> list[str]:
        """Upload ids that have parts in the store (for expiry and fsck)."""

    def size_of(self, blake3_hex: str) -> int | None:
        """The stored blob's size in bytes, or None when absent."""

    def read(self, blake3_hex: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream ``length`` bytes (to the end when None) from ``offset``.

        Raises StoredBlobMissingError. Chunks are at most READ_CHUNK_BYTES.
        """

    def modified_at(self, blake3_hex: str) -> float | None:
        """When the stored blob was last written (POSIX seconds, the store's clock), or
        None when absent. Raises StorageUnavailableError."""

    def delete(self, blake3_hex: str) -> None:
        """Remove a blob (fsck and garbage collection only); missing is fine."""

    def list_blobs(self) -> Iterator[str]:
        """Every stored blob's blake3 hex, in no particular order. Anything else found
        where blobs live (a stray file, a hand-put object) is not listed."""

    def purge_staging(self, idle_seconds: float, *, lifetime_seconds: float) -> int:
        """Remove staged writes that no live writer owns; how many went.

        A staged write (of a blob or of an upload part) that has received no bytes
        for ``idle_seconds`` is taken as abandoned. A backend that can tell a dead
        process's write from a live one's removes the dead one's at once (the
        filesystem: writers hold a lock the kernel drops when they die); one that
        cannot (S3) waits out ``idle_seconds``. Unfinished S3 multipart uploads count.
        ``lifetime_seconds`` is the longest a live request may own a staged write (the
        upload TTL): a staged write that the backend can date only by when its
        upload began, not by its last byte (S3's finished staging object, whose
        ``LastModified`` may be its multipart upload's initiation), goes only once
        older than that, never by ``idle_seconds``.
        Committed blobs and committed upload parts are never touched.
        Raises StorageUnavailableError.
        """

    def check(self) -> None:
        """Raise StorageUnavailableError unless the store is reachable and writable."""


def safe_name(name: str) -> str:
    """``name`` itself, once it is known to be one key segment: not empty, no ``/``,
    not ``.`` or ``..``, no NUL. Backends pass every caller-given name (a blake3 hex,
    an upload id, a part name) through it before building a key or path from it.

    Raises:
        ValueError: ``name`` could escape its directory or is empty.
    """
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise ValueError(f"unsafe storage name {name!r}")
    return name


def blob_key(blake3_hex: str) -> str:
    """The relative key of a blob: ``blobs/blake3/<xx>/<hex>``."""
    return f"blobs/blake3/{blake3_hex[:2]}/{blake3_hex}"


def upload_prefix(upload_id: str) -> str:
    return f"_uploads/{upload_id}/"
