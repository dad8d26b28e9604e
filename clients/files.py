"""Reading and writing local files while hashing them, always verified, always fsync'd."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from clients.errors import VerificationError
from registry.core.digest import BlobDigests, DualHasher
from registry.core.manifest import FileEntry

CHUNK_BYTES = 1024 * 1024


def hash_file(path: Path, advance: Callable[[int], None] | None = None) -> BlobDigests:
    """Both digests of a file, read in 1 MiB chunks."""
    hasher = DualHasher()
    with path.open("rb") as handle:
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
    with source.open("rb") as src, dest.open("wb") as out:
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


def link_durably(source: Path, dest: Path) -> bool:
    """Hard-link ``source`` (a verified cache entry) at ``dest`` and make it durable.

    False where the filesystem will not link (another device, no links): copy instead.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except FileNotFoundError:
        raise
    except OSError:
        return False
    fd = os.open(dest, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True
