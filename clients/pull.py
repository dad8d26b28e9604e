"""``reliquary pull``: fetch an artifact by hash and write it only once every byte verified.

The server is never trusted:
1. REF is a digest of the manifest (``blake3:``/``sha256:``) or ``name@version``;
   the manifest bytes must hash to the digest, and for ``name@version`` the
   manifest must name that very name and version.
2. The manifest is parsed and validated here: unsafe paths are refused even if
   a server serves them.
3. Each file is streamed into the local cache, checked for size, blake3 and
   sha256 while it arrives; an interrupted download resumes with Range.
4. Files land in a staging directory beside DIR (fsync'd), and are moved into
   place only when all of them verified: a failure leaves DIR as it was. A file
   is a hard link to its cache entry where the filesystem allows (one write of
   the bytes, as with a plain download), else a copy verified as it is made.
   Before a link to a cache entry not downloaded by this pull, the entry is verified;
   a damaged one is dropped and downloaded again (a copy of it fails, and drops it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from clients.cache import BlobCache
from clients.client import RegistryClient
from clients.errors import InvalidRequestError, VerificationError
from clients.files import (
    CHUNK_BYTES,
    READ_ONLY,
    check_entry,
    copy_verified,
    hash_file,
    hash_stream,
    link_durably,
)
from clients.progress import TransferProgress
from registry.core.digest import Digest, DualHasher
from registry.core.errors import CoreError
from registry.core.manifest import (
    FileEntry,
    Manifest,
    ParsedManifest,
    parse_manifest,
    validate_name,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PullResult:
    digest: str
    name: str
    version: str
    files: int
    total_bytes: int
    downloaded_bytes: int
    cached_bytes: int
    kept_bytes: int  # already in DIR and verified (--verify-existing)


def resolve_ref(client: RegistryClient, ref: str) -> tuple[Digest, tuple[str, str] | None]:
    """The manifest digest REF names, and the name@version it must carry if given so."""
    if ref.startswith(("blake3:", "sha256:")):
        try:
            return Digest.parse(ref), None
        except CoreError as exc:
            raise InvalidRequestError(str(exc)) from exc
    name, sep, version = ref.rpartition("@")
    if not sep or validate_name(name):
        raise InvalidRequestError(
            f"cannot read {ref!r}: give blake3:<hex>, sha256:<hex> or name@version"
        )
    return Digest.parse(str(client.resolve(name, version)["digest"])), (name, version)


def fetch_manifest(client: RegistryClient, ref: str) -> tuple[Digest, Manifest]:
    """The manifest REF names (verified, validated) and its blake3 digest.

    Raises VerificationError on any lie.
    """
    parsed = fetch_parsed_manifest(client, ref)
    return parsed.digests.blake3, parsed.manifest


def fetch_parsed_manifest(client: RegistryClient, ref: str) -> ParsedManifest:
    """The manifest REF names, verified and validated, with its exact bytes and both digests.

    Raises VerificationError on any lie.
    """
    digest, expected = resolve_ref(client, ref)
    raw = client.manifest(digest)  # the client checks the bytes hash to ``digest``
    try:
        parsed = parse_manifest(raw)
    except CoreError as exc:
        raise VerificationError(
            f"the registry served an invalid manifest for {digest}: {exc}"
        ) from exc
    manifest = parsed.manifest
    if expected is not None and (manifest.name, manifest.version) != expected:
        raise VerificationError(
            f"the registry resolved {expected[0]}@{expected[1]} to {digest}, but that manifest "
            f"is {manifest.name}@{manifest.version}; refusing it"
        )
    return parsed


def download(
    client: RegistryClient,
    cache: BlobCache,
    entry: FileEntry,
    advance: Callable[[int], None],
    durable: bool = False,
) -> tuple[int, int]:
    """Bring one blob into the cache, verified; (bytes downloaded, the entry's inode).

    One process at a time downloads a blob (a lock on its partial file): a second pull
    of the same blob waits, then finds it in the cache and verifies it. The entry is
    made read-only. ``durable``: fsync it here (it is about to be installed as a link),
    so that the disk writes of one download overlap the transfers of the others.
    """
    partial = cache.partial_path(entry.blake3)
    with _locked(partial) as handle:
        fd = handle.fileno()
        if cache.contains(entry.blake3, entry.size):  # another pull brought it meanwhile
            inode = _cached_intact(cache, entry, advance)
            if inode is not None:
                partial.unlink()  # the empty file this process opened
                return 0, inode
        hasher = DualHasher()
        offset = 0
        if os.fstat(fd).st_size > entry.size:
            os.ftruncate(fd, 0)
        else:  # resume: re-hash what arrived before
            handle.seek(0)
            while chunk := handle.read(CHUNK_BYTES):
                hasher.update(chunk)
                offset += len(chunk)
            advance(offset)
        fetched = 0
        if offset < entry.size or entry.size == 0:
            with client.open_blob(Digest.blake3(entry.blake3), offset=offset) as chunks:
                for chunk in chunks:
                    if offset + len(chunk) > entry.size:
                        break  # more than the manifest says: verification fails below
                    handle.write(chunk)
                    hasher.update(chunk)
                    offset += len(chunk)
                    fetched += len(chunk)
                    advance(len(chunk))
        handle.flush()
        try:
            check_entry(entry, hasher.finish(), "the downloaded blob")
            if os.fstat(fd).st_size != entry.size:  # only this process writes it (locked)
                raise VerificationError(f"the partial download of {entry.path} changed size")
        except VerificationError:
            partial.unlink()
            raise
        os.fchmod(fd, READ_ONLY)  # an installed link cannot be edited in place by mistake
        # otherwise no fsync: a cache entry is verified again whenever it is used, so a
        # torn file after a crash is caught there; only installed files must be durable
        if durable:
            os.fsync(fd)
        inode = os.fstat(fd).st_ino
        cache.admit(partial, entry.blake3)  # still locked: waiters then find it cached
    return fetched, inode


@contextlib.contextmanager
def _locked(partial: Path) -> Iterator[BinaryIO]:
    """The partial download file, opened for append and locked against other processes.

    Retries when the file it locked was moved or removed meanwhile (by the holder
    before it, which admitted it into the cache or threw it away).
    """
    while True:
        handle = partial.open("a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                same = os.stat(partial).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield handle
                return
        finally:
            handle.close()


def _kept(out_dir: Path, entry: FileEntry) -> bool:
    target = out_dir / entry.path
    if not target.is_file() or target.is_symlink() or target.stat().st_size != entry.size:
        return False
    try:
        check_entry(entry, hash_file(target), "the existing file")
    except VerificationError:
        return False
    return True


def pull(
    client: RegistryClient,
    ref: str,
    out_dir: Path,
    *,
    cache: BlobCache,
    progress: TransferProgress,
    verify_existing: bool = False,
    parallel: int = 4,
    expect_name: str | None = None,
    link: bool = True,
) -> PullResult:
    """Pull REF into ``out_dir``; with ``expect_name``, the manifest must carry that name
    (for a digest the registry named, e.g. a channel's). ``link``: installed files may be
    hard links to the cache (see ``_install``); otherwise independent copies.

    Raises:
        VerificationError: a byte, digest, name or path did not check out; ``out_dir``
            is left as it was.
        NotFoundError, AuthError, InvalidRequestError, TransportError, ServerError.
    """
    digest, manifest = fetch_manifest(client, ref)
    if expect_name is not None and manifest.name != expect_name:
        raise VerificationError(
            f"expected an artifact of {expect_name}, but {digest} is {manifest.name}@"
            f"{manifest.version}; refusing it"
        )
    files = list(manifest.files)
    kept = [e for e in files if verify_existing and _kept(out_dir, e)]
    needed = [e for e in files if e not in kept]
    unique = list({e.blake3: e for e in needed}.values())
    out_dir = out_dir.absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    link = link and os.stat(out_dir.parent).st_dev == os.stat(cache.root).st_dev
    present = [e for e in unique if cache.contains(e.blake3, e.size)]
    inodes: dict[str, int] = {}  # blake3 -> the verified cache entry's inode (links only)
    if present and link:  # a copy verifies as it copies: no separate pass for it
        checking = progress.task("verifying cache", sum(e.size for e in present))
        with ThreadPoolExecutor(max_workers=parallel) as pool:  # hashing releases the GIL
            found = _all_or_none(pool, lambda e: _cached_intact(cache, e, checking), present)
        inodes = {e.blake3: i for e, i in zip(present, found, strict=True) if i is not None}
    cached = set(inodes) if link else {e.blake3 for e in present}
    to_fetch = [e for e in unique if e.blake3 not in cached]
    staging = out_dir.parent / f".{out_dir.name}.reliquary-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        bar = progress.task("downloading", sum(e.size for e in to_fetch))
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            got = _all_or_none(
                pool, lambda e: download(client, cache, e, bar, durable=link), to_fetch
            )
        inodes |= {e.blake3: inode for e, (_, inode) in zip(to_fetch, got, strict=True)}
        downloaded = sum(n for n, _ in got)
        _install(cache, needed, staging, parallel, inodes if link else None)
        _move_in(staging, needed, out_dir)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
    return PullResult(
        digest=str(digest),
        name=manifest.name,
        version=manifest.version,
        files=len(files),
        total_bytes=manifest.total_size_bytes,
        downloaded_bytes=downloaded,
        cached_bytes=sum(e.size for e in unique if e.blake3 in cached),
        kept_bytes=sum(e.size for e in kept),
    )


def _all_or_none(
    pool: ThreadPoolExecutor, work: Callable[[FileEntry], T], entries: list[FileEntry]
) -> list[T]:
    """``work`` on every entry in ``pool``; the first failure cancels what has not started."""
    futures = [pool.submit(work, e) for e in entries]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for pending in futures:
            pending.cancel()
        raise


def _cached_intact(
    cache: BlobCache, entry: FileEntry, advance: Callable[[int], None]
) -> int | None:
    """The inode of the cache entry if it is still ``entry`` (a regular file, read through
    one descriptor); a damaged one (say, an installed link edited in place) is dropped,
    to be downloaded again."""
    path = cache.path(entry.blake3)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # gone, or a symlink (ELOOP)
        cache.evict(entry.blake3)
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        try:
            if not stat.S_ISREG(info.st_mode):
                raise VerificationError(f"cache entry {path} is not a regular file")
            check_entry(entry, hash_stream(handle, advance), "the cached blob")
        except VerificationError:
            cache.evict(entry.blake3)
            return None
        if info.st_mode & 0o222:
            os.fchmod(fd, READ_ONLY)
        return info.st_ino


def _install(
    cache: BlobCache,
    entries: list[FileEntry],
    staging: Path,
    parallel: int,
    links: dict[str, int] | None,
) -> None:
    """Put every file into ``staging`` from the cache (every entry verified by now), durably.

    With ``links`` (blake3 -> the inode that was verified), files are hard links to
    exactly those cache entries: no second copy of the bytes. Otherwise each file is
    an independent copy, verified again as it is copied.
    """

    def install(entry: FileEntry) -> int:
        source, dest = cache.path(entry.blake3), staging / entry.path
        try:
            if links is None or not link_durably(source, dest, links[entry.blake3]):
                copy_verified(source, dest, entry)
        except FileNotFoundError as exc:  # removed meanwhile (another pull, or by hand)
            raise VerificationError(f"cached blob {entry.blake3} is gone: {exc}") from exc
        except VerificationError:
            cache.evict(entry.blake3)  # a corrupted cache entry is never used twice
            raise
        return entry.size

    with ThreadPoolExecutor(max_workers=parallel) as pool:  # hashing releases the GIL
        _all_or_none(pool, install, entries)


def _move_in(staging: Path, entries: list[FileEntry], out_dir: Path) -> None:
    """Move verified files from ``staging`` into ``out_dir`` (the whole dir if new)."""
    if not out_dir.exists():
        staging.replace(out_dir)
        return
    for entry in entries:
        target = out_dir / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        (staging / entry.path).replace(target)
