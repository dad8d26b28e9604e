"""Reading and writing local files while hashing them, always verified, always fsync'd."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from clients.errors import VerificationError
from registry.core.digest import BlobDigests, DualHasher
from registry.core.manifest import FileEntry

CHUNK_BYTES = 1024 * 1024
READ_ONLY = 0o444  # cache entries: installed files may be hard links to them


def hash_file(path: Path, advance: Callable[[int], None] | None = None) -> BlobDigests:
    """Both digests of a file, read in 1 MiB chunks."""
    with path.open("rb") as handle:
        return hash_stream(handle, advance)


def hash_stream(handle: BinaryIO, advance: Callable[[int], None] | None = None) -> BlobDigests:
    """Both digests of what ``handle`` reads from where it stands, in 1 MiB chunks."""
    hasher = DualHasher()
    while chunk := handle.read(CHUNK_BYTES):
        hasher.update(chunk)
        if advance is not None:
            advance(len(chunk))
    return hasher.finish()


def check_entry(entry: FileEntry, digests: BlobDigests, where: str) -> None:
    """Raises VerificationError unless ``digests`` are the manifest entry's."""
    if (
        digests.size_bytes != entry.size
        or digests.blake3.hex != entry.blake3
        or digests.sha256.hex != entry.sha256
    ):
        raise VerificationError(
            f"{entry.path}: {where} does not match the manifest "
            f"(expected {entry.size} bytes blake3:{entry.blake3}, got {digests.size_bytes} bytes "
            f"{digests.blake3}); the file was not written"
        )


def copy_verified(source: Path, dest: Path, entry: FileEntry) -> None:
    """Copy ``source`` to ``dest`` while hashing; fsync; refuse if it is not ``entry``."""
    hasher = DualHasher()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, dest.open("xb") as out:  # never through an existing link
        while chunk := src.read(CHUNK_BYTES):
            hasher.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    try:
        check_entry(entry, hasher.finish(), "the cached copy")
    except VerificationError:
        dest.unlink()
        raise


def link_durably(source: Path, dest: Path, inode: int) -> bool:
    """Hard-link the cache entry ``source`` at ``dest`` if it is still the verified file
    ``inode``, and make it durable.

    False where the filesystem will not link: copy instead. Raises VerificationError if
    ``source`` is not that file any more (replaced, or a symlink, since it verified).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest, follow_symlinks=False)
    except (FileNotFoundError, FileExistsError):
        raise
    except OSError:
        return False
    info = os.lstat(dest)
    if not stat.S_ISREG(info.st_mode) or info.st_ino != inode:
        dest.unlink()
        raise VerificationError(f"cache entry {source} changed after it verified; pull again")
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True
