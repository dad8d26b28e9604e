"""Filesystem-only behaviour: ranges served from the page cache without a thread hop;
staging files locked by their writer, so a dead writer's go at once."""

from __future__ import annotations

import fcntl
import functools
import random
from pathlib import Path

import pytest
from blake3 import blake3

from registry.storage.base import CachedReads
from registry.storage.filesystem import FilesystemBlobStore
from tests.support.crash import die_mid_write

MiB = 1024 * 1024


def test_cached_reads_and_blocking_reads_interleave_to_the_exact_bytes(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = random.Random(9).randbytes(3 * MiB + 5)
    writer = store.open_writer()
    writer.write(data)
    hex_digest = blake3(data).hexdigest()
    writer.commit(hex_digest)
    reader = store.read(hex_digest, 10, len(data) - 20)
    assert isinstance(reader, CachedReads)
    got, cached = [], 0
    for turn in range(10):
        try:
            chunk = reader.read_cached() if turn % 2 == 0 else next(reader)
        except StopIteration:
            break
        if chunk is None:
            chunk = next(reader)
        else:
            cached += 1
        got.append(chunk)
    assert b"".join(got) == data[10:-10]
    assert cached >= 1  # just written: the page cache has it
    with pytest.raises(StopIteration):
        reader.read_cached()
    with pytest.raises(StopIteration):
        next(reader)


def test_a_killed_writers_staging_file_goes_at_once_and_a_live_ones_stays(
    tmp_path: Path,
) -> None:
    store = FilesystemBlobStore(tmp_path)
    live = store.open_writer()
    live.write(b"still arriving")
    die_mid_write(functools.partial(FilesystemBlobStore, tmp_path))
    staging = tmp_path / "_staging"
    assert len(list(staging.iterdir())) == 2

    # no process holds the killed writer's lock: its file is removed however young
    assert store.purge_staging(idle_seconds=3600, lifetime_seconds=3600) == 1
    assert len(list(staging.iterdir())) == 1
    live.commit(blake3(b"still arriving").hexdigest())
    assert list(staging.iterdir()) == []
    assert list(store.list_blobs()) == [blake3(b"still arriving").hexdigest()]


def test_a_file_purged_before_its_writer_locks_it_is_replaced(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    staging = tmp_path / "_staging"
    real_flock = fcntl.flock
    purged: list[int] = []

    def purge_first(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and not purged:  # the writer's, the first time:
            purged.append(
                store.purge_staging(idle_seconds=3600, lifetime_seconds=3600)
            )  # a purge gets in first
        real_flock(fd, operation)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fcntl, "flock", purge_first)
        writer = store.open_writer()
    assert purged == [1]  # it took the unlocked new file; the writer made another
    writer.write(b"kept")
    assert store.purge_staging(idle_seconds=3600, lifetime_seconds=3600) == 0
    writer.commit(blake3(b"kept").hexdigest())
    assert list(staging.iterdir()) == []
    assert b"".join(store.read(blake3(b"kept").hexdigest())) == b"kept"


def test_a_stray_file_among_the_blobs_is_not_listed(tmp_path: Path) -> None:
    """An NFS leftover or an editor's file is no blob: reconciliation, which removes
    unrecorded blobs it cannot verify, must never be handed its name."""
    store = FilesystemBlobStore(tmp_path / "store")
    data = b"a blob beside a stray file"
    writer = store.open_writer()
    writer.write(data)
    writer.commit(blake3(data).hexdigest())
    shard = tmp_path / "store" / "blobs" / "blake3" / blake3(data).hexdigest()[:2]
    (shard / ".nfs0000000000001234").write_bytes(b"not a blob")
    assert list(store.list_blobs()) == [blake3(data).hexdigest()]
