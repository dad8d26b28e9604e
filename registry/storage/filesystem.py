"""Local filesystem blob store.

Layout under the root: ``blobs/blake3/<xx>/<hex>`` (published blobs),
``_staging/<random>`` (blobs being written), ``_uploads/<id>/<part>`` (parts of
resumable uploads). Staging, parts and blobs share one filesystem, so publishing is an
``fsync`` then an atomic ``rename`` and a directory ``fsync`` (a promoted part: the
rename of an ``fsync``'ed part).

A writer holds an exclusive ``flock`` on its staging file from creation until the
file is renamed into place or unlinked, and the kernel drops it when the process
dies. So a staging file that can be locked belongs to no live writer, whatever its
age: ``purge_staging`` removes those at once (it unlinks while holding the lock, and
a writer that finds its freshly created file unlinked under it starts another).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from registry.core.digest import is_hex64
from registry.storage.base import (
    READ_CHUNK_BYTES,
    StorageFullError,
    StorageUnavailableError,
    StoreClock,
    StoredBlobMissingError,
    blob_key,
    safe_name,
    upload_prefix,
)


def _load_sync_file_range() -> Callable[[int, int, int], None]:
    """``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)`` where Linux has it.

    Starting writeback of each batch as it is written spreads the disk work over
    the upload, so the final ``fsync`` has little left to do. Elsewhere a no-op.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, nbytes: None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    sync_file_range_write = 2

    def start_writeback(fd: int, offset: int, nbytes: int) -> None:
        call(fd, offset, nbytes, sync_file_range_write)  # advisory: errors surface at fsync

    return start_writeback


start_writeback = _load_sync_file_range()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_locked(staging: Path) -> tuple[Path, int]:
    """A new staging file under ``staging``, open for writing and flock'ed. Raises OSError."""
    while True:
        path = staging / secrets.token_hex(16)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a purge holding it unlinks first, then lets go
            if os.fstat(fd).st_nlink:
                return path, fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # purged between creation and lock: take another name


def _write_error(what: str, exc: OSError) -> StorageUnavailableError:
    """``StorageFullError`` when the filesystem is out of space or quota, else unavailable."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(
            f"{what}: the blob store's disk is full ({exc.strerror}); nothing was stored. "
            "Free space on it, then retry"
        )
    return StorageUnavailableError(f"{what}: {exc}")


class _FileWriter:
    """Writes to a private, locked staging file, then renames it into place on commit."""

    def __init__(self, staging: Path, final_for: Path | None) -> None:
        self._final_for = final_for  # fixed destination (upload parts) or None (blobs)
        self._root: Path | None = None
        self._tmp, fd = _create_locked(staging)
        self._fd: int | None = fd
        self._written = 0

    def bind_root(self, root: Path) -> _FileWriter:
        self._root = root
        return self

    def write(self, data: bytes | memoryview) -> None:
        if self._fd is None:
            raise StorageUnavailableError("write after commit or abort")
        view = memoryview(data)
        start = self._written
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self._written += written
            start_writeback(self._fd, start, self._written - start)
        except OSError as exc:
            raise _write_error("cannot write blob data", exc) from exc

    def commit(self, blake3_hex: str) -> None:
        if self._fd is None:
            raise StorageUnavailableError("commit after commit or abort")
        assert self._root is not None
        final = self._final_for or self._root / blob_key(blake3_hex)
        try:
            os.fsync(self._fd)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, final)  # replaces what was there (damaged bytes too)
            _fsync_dir(final.parent)
        except OSError as exc:
            self.abort()
            raise _write_error("cannot publish blob", exc) from exc
        # closed (and unlocked) only once renamed: a staged file is never unlocked while live
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def abort(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class _FileRange(Iterator[bytes]):
    """A byte range of one open file: ``next`` may block on the disk, ``read_cached``
    never does (``preadv`` with ``RWF_NOWAIT`` answers only from the page cache)."""

    def __init__(self, fd: int, offset: int, remaining: int) -> None:
        self._fd: int | None = fd
        self._offset = offset
        self._remaining = remaining
        self._nowait = hasattr(os, "RWF_NOWAIT")

    def _advance(self, chunk: bytes) -> bytes:
        if not chunk:
            self.close()
            raise StoredBlobMissingError("blob is shorter than its recorded size")
        self._offset += len(chunk)
        self._remaining -= len(chunk)
        return chunk

    def _open_fd(self) -> int:
        if self._fd is None or self._remaining <= 0:
            self.close()
            raise StopIteration
        return self._fd

    def __next__(self) -> bytes:
        fd = self._open_fd()
        try:
            chunk = os.pread(fd, min(READ_CHUNK_BYTES, self._remaining), self._offset)
        except OSError as exc:
            self.close()
            raise StorageUnavailableError(f"cannot read blob: {exc}") from exc
        return self._advance(chunk)

    def read_cached(self) -> bytes | None:
        fd = self._open_fd()
        if not self._nowait:
            return None
        buffer = bytearray(min(READ_CHUNK_BYTES, self._remaining))
        try:
            got = os.preadv(fd, [buffer], self._offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return None  # not in the page cache: read it in a thread
        except OSError:
            self._nowait = False  # this filesystem does not do RWF_NOWAIT
            return None
        return self._advance(bytes(memoryview(buffer)[:got]))

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


def _purge_if_abandoned(path: Path, cutoff: float) -> int:
    """Unlink a staging file no process holds locked, or one untouched since ``cutoff``
    (a live process leaked it); 1 if this call removed it. Raises OSError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live writer's
            if os.fstat(fd).st_mtime >= cutoff:
                return 0
        if not os.fstat(fd).st_nlink:  # another purge took it first
            return 0
        try:
            path.unlink()  # while holding the lock: a writer that raced us sees nlink 0
        except FileNotFoundError:
            return 0
        return 1
    finally:
        os.close(fd)


class FilesystemBlobStore:
    """Blobs as files under one root directory."""

    def __init__(self, root: Path, *, now: StoreClock | None = None) -> None:
        self.root = root
        self._now = now or time.time  # a staging file's mtime is on the host's clock
        self.description = f"filesystem:{root}"
        for sub in ("blobs/blake3", "_staging", "_uploads"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def open_writer(self) -> _FileWriter:
        try:
            return _FileWriter(self.root / "_staging", None).bind_root(self.root)
        except OSError as exc:
            raise _write_error("cannot create staging file", exc) from exc

    def _part_path(self, upload_id: str, part_name: str) -> Path:
        return self.root / upload_prefix(safe_name(upload_id)) / safe_name(part_name)

    def open_part_writer(self, upload_id: str, part_name: str) -> _FileWriter:
        final = self._part_path(upload_id, part_name)  # its directory appears at commit
        try:
            return _FileWriter(self.root / "_staging", final).bind_root(self.root)
        except OSError as exc:
            raise _write_error("cannot create upload part", exc) from exc

    def read_part(self, upload_id: str, part_name: str) -> Iterator[bytes]:
        return self._read_path(self._part_path(upload_id, part_name), 0, None)

    def delete_part(self, upload_id: str, part_name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._part_path(upload_id, part_name).unlink()

    def promote_part(self, upload_id: str, part_name: str, blake3_hex: str) -> None:
        part = self._part_path(upload_id, part_name)
        final = self.blob_path(blake3_hex)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)  # the part was fsync'ed at its commit
            _fsync_dir(final.parent)
        except FileNotFoundError:
            if part.exists():
                raise StorageUnavailableError(f"cannot publish part {part_name}") from None
            raise StoredBlobMissingError(
                f"part {part_name} of upload {upload_id} is missing from {self.description}"
            ) from None
        except OSError as exc:
            raise _write_error("cannot publish blob", exc) from exc

    def delete_upload(self, upload_id: str) -> None:
        directory = self.root / upload_prefix(safe_name(upload_id))
        if not directory.is_dir():
            return
        for child in directory.iterdir():
            with contextlib.suppress(FileNotFoundError):
                child.unlink()
        with contextlib.suppress(OSError):
            directory.rmdir()

    def list_upload_ids(self) -> list[str]:
        return sorted(p.name for p in (self.root / "_uploads").iterdir() if p.is_dir())

    def blob_path(self, blake3_hex: str) -> Path:
        return self.root / blob_key(safe_name(blake3_hex))

    def size_of(self, blake3_hex: str) -> int | None:
        try:
            return self.blob_path(blake3_hex).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailableError(f"cannot stat blob: {exc}") from exc

    def read(self, blake3_hex: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        return self._read_path(self.blob_path(blake3_hex), offset, length)

    def _read_path(self, path: Path, offset: int, length: int | None) -> Iterator[bytes]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise StoredBlobMissingError(
                f"{path.name} is missing from {self.description}"
            ) from None
        except OSError as exc:
            raise StorageUnavailableError(f"cannot open {path.name}: {exc}") from exc
        try:
            remaining = os.fstat(fd).st_size - offset if length is None else length
        except OSError as exc:
            os.close(fd)
            raise StorageUnavailableError(f"cannot stat {path.name}: {exc}") from exc
        return _FileRange(fd, offset, remaining)

    def modified_at(self, blake3_hex: str) -> float | None:
        try:
            return self.blob_path(blake3_hex).stat().st_mtime
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailableError(f"cannot stat blob: {exc}") from exc

    def delete(self, blake3_hex: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(blake3_hex).unlink()

    def list_blobs(self) -> Iterator[str]:
        base = self.root / "blobs" / "blake3"
        for shard in sorted(base.iterdir()):
            if shard.is_dir():
                for blob in sorted(shard.iterdir()):
                    if is_hex64(blob.name):  # not a stray file (``.nfs…``, an editor's)
                        yield blob.name

    def purge_staging(self, idle_seconds: float, *, lifetime_seconds: float) -> int:
        # a staging file's mtime is its last byte: lifetime_seconds adds nothing here
        cutoff = self._now() - idle_seconds
        removed = 0
        for path in (self.root / "_staging").iterdir():
            try:
                removed += _purge_if_abandoned(path, cutoff)
            except OSError as exc:
                raise StorageUnavailableError(f"cannot purge {path.name}: {exc}") from exc
        return removed

    def check(self) -> None:
        probe = self.root / "_staging" / f"readyz-{secrets.token_hex(4)}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink(missing_ok=True)  # a purge may have taken it: it holds no lock
        except OSError as exc:
            raise StorageUnavailableError(f"{self.description} is not writable: {exc}") from exc
