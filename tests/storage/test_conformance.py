"""One conformance suite for every BlobStore backend (see registry/storage/base.py).

Each test runs once per backend through the ``blob_store`` fixture; nothing here
may know which backend it is talking to. The S3 store in the fixture uses 5 MiB
parts, so blobs of a few MiB already go through multipart upload and copy.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from blake3 import blake3

from registry.storage.base import (
    READ_CHUNK_BYTES,
    BlobStore,
    StorageUnavailableError,
    StoredBlobMissingError,
)
from tests.support.clock import FakeClock
from tests.support.crash import die_mid_write
from tests.support.stores import StoreRecipe

MiB = 1024 * 1024


def payload(size_bytes: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size_bytes)


def digest_of(data: bytes) -> str:
    return str(blake3(data).hexdigest())


def store_blob(store: BlobStore, data: bytes, write_bytes: int = MiB + 3) -> str:
    """Write ``data`` in odd-sized pieces (never aligned to a part) and commit it."""
    writer = store.open_writer()
    view = memoryview(data)
    for start in range(0, len(data), write_bytes):
        writer.write(view[start : start + write_bytes])
    hex_digest = digest_of(data)
    writer.commit(hex_digest)
    return hex_digest


def read_all(
    store: BlobStore, hex_digest: str, offset: int = 0, length: int | None = None
) -> bytes:
    chunks = list(store.read(hex_digest, offset, length))
    assert all(0 < len(chunk) <= READ_CHUNK_BYTES for chunk in chunks)
    return b"".join(chunks)


def test_commit_publishes_the_exact_bytes(blob_store: BlobStore) -> None:
    data = b"model weights " * 100
    writer = blob_store.open_writer()
    writer.write(data[:7])
    writer.write(memoryview(data)[7:])
    writer.commit(digest_of(data))

    assert blob_store.size_of(digest_of(data)) == len(data)
    assert read_all(blob_store, digest_of(data)) == data
    assert list(blob_store.list_blobs()) == [digest_of(data)]


def test_empty_blob_round_trips(blob_store: BlobStore) -> None:
    writer = blob_store.open_writer()
    writer.commit(digest_of(b""))

    assert blob_store.size_of(digest_of(b"")) == 0
    assert read_all(blob_store, digest_of(b"")) == b""


def test_nothing_is_visible_before_commit(blob_store: BlobStore) -> None:
    data = payload(6 * MiB)  # more than one S3 part: a multipart upload is under way
    hex_digest = digest_of(data)
    writer = blob_store.open_writer()
    writer.write(data)

    assert blob_store.size_of(hex_digest) is None
    with pytest.raises(StoredBlobMissingError):
        read_all(blob_store, hex_digest)
    assert list(blob_store.list_blobs()) == []

    writer.commit(hex_digest)
    assert blob_store.size_of(hex_digest) == len(data)


def test_abort_leaves_nothing(blob_store: BlobStore) -> None:
    data = payload(6 * MiB)
    writer = blob_store.open_writer()
    writer.write(data)
    writer.abort()
    writer.abort()  # a second abort is harmless

    assert blob_store.size_of(digest_of(data)) is None
    assert list(blob_store.list_blobs()) == []
    assert blob_store.list_upload_ids() == []
    with pytest.raises(StorageUnavailableError):
        writer.write(b"more")
    with pytest.raises(StorageUnavailableError):
        writer.commit(digest_of(data))
    assert blob_store.size_of(digest_of(data)) is None


def test_abort_after_commit_keeps_the_blob(blob_store: BlobStore) -> None:
    data = b"published"
    writer = blob_store.open_writer()
    writer.write(data)
    writer.commit(digest_of(data))
    writer.abort()

    assert read_all(blob_store, digest_of(data)) == data
    with pytest.raises(StorageUnavailableError):
        writer.commit(digest_of(data))


@pytest.mark.parametrize("size_bytes", [1000, 6 * MiB], ids=["single-put", "multipart"])
def test_committing_the_same_content_twice_stores_it_once(
    blob_store: BlobStore, size_bytes: int
) -> None:
    data = payload(size_bytes, seed=1)
    first = store_blob(blob_store, data)
    second = store_blob(blob_store, data)

    assert first == second
    assert list(blob_store.list_blobs()) == [first]
    assert read_all(blob_store, first) == data


@pytest.mark.parametrize("size_bytes", [1000, 6 * MiB], ids=["single-put", "multipart"])
def test_a_commit_replaces_bytes_that_do_not_hash_to_the_key(
    blob_store: BlobStore, size_bytes: int
) -> None:
    """The store never trusts bytes already at a key: damaged ones are replaced by the
    next commit of that digest (the caller verified what it commits)."""
    good = payload(size_bytes, seed=11)
    damaged = bytearray(good)
    damaged[size_bytes // 2] ^= 0xFF  # one flipped byte, the same size
    writer = blob_store.open_writer()
    writer.write(bytes(damaged))
    writer.commit(digest_of(good))  # what a disk (or a hand) left under this name

    assert store_blob(blob_store, good) == digest_of(good)
    assert read_all(blob_store, digest_of(good)) == good
    assert list(blob_store.list_blobs()) == [digest_of(good)]


def test_concurrent_writers_of_the_same_content_both_succeed(blob_store: BlobStore) -> None:
    data = payload(6 * MiB, seed=2)
    both_written = threading.Barrier(2, timeout=30)

    def upload() -> str:
        writer = blob_store.open_writer()
        writer.write(data)
        both_written.wait()  # commit at the same moment
        writer.commit(digest_of(data))
        return digest_of(data)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [future.result() for future in [pool.submit(upload), pool.submit(upload)]]

    assert results == [digest_of(data)] * 2
    assert list(blob_store.list_blobs()) == [digest_of(data)]
    assert read_all(blob_store, digest_of(data)) == data


def test_ranged_reads(blob_store: BlobStore) -> None:
    data = payload(2 * READ_CHUNK_BYTES + READ_CHUNK_BYTES // 2 + 7, seed=3)
    hex_digest = store_blob(blob_store, data)
    size = len(data)
    ranges: list[tuple[int, int | None]] = [
        (0, None),
        (0, 1),
        (5, 10),
        (READ_CHUNK_BYTES - 1, 2),  # straddles a chunk boundary
        (READ_CHUNK_BYTES, READ_CHUNK_BYTES),  # exactly the second chunk
        (READ_CHUNK_BYTES + 1, None),
        (0, size),
        (size - 1, None),
        (size - 1, 1),
        (10, 0),  # zero-length
        (size, 0),
        (size, None),  # at the end: nothing left
    ]
    for offset, length in ranges:
        end = size if length is None else offset + length
        assert read_all(blob_store, hex_digest, offset, length) == data[offset:end], (
            offset,
            length,
        )


def test_a_range_past_the_end_is_reported_as_missing_bytes(blob_store: BlobStore) -> None:
    data = b"0123456789"
    hex_digest = store_blob(blob_store, data)

    with pytest.raises(StoredBlobMissingError):
        read_all(blob_store, hex_digest, 5, 10)
    with pytest.raises(StoredBlobMissingError):
        read_all(blob_store, hex_digest, 20, 1)


def test_zero_length_read_of_a_missing_blob_raises(blob_store: BlobStore) -> None:
    with pytest.raises(StoredBlobMissingError):
        read_all(blob_store, digest_of(b"absent"), 0, 0)


def test_a_blob_of_many_parts_round_trips_exactly(blob_store: BlobStore) -> None:
    data = payload(20 * MiB + 12_345, seed=4)
    hex_digest = store_blob(blob_store, data)

    assert blob_store.size_of(hex_digest) == len(data)
    hasher = blake3()
    received = 0
    for chunk in blob_store.read(hex_digest):
        assert len(chunk) <= READ_CHUNK_BYTES
        hasher.update(chunk)
        received += len(chunk)
    assert received == len(data)
    assert hasher.hexdigest() == hex_digest


def test_missing_blob(blob_store: BlobStore) -> None:
    absent = digest_of(b"never stored")
    assert blob_store.size_of(absent) is None
    with pytest.raises(StoredBlobMissingError):
        read_all(blob_store, absent)
    with pytest.raises(StoredBlobMissingError):
        read_all(blob_store, absent, 3, 4)


def test_delete_removes_the_blob_and_tolerates_missing(blob_store: BlobStore) -> None:
    kept = store_blob(blob_store, b"kept")
    doomed = store_blob(blob_store, b"doomed")

    blob_store.delete(doomed)
    blob_store.delete(doomed)
    blob_store.delete(digest_of(b"never stored"))

    assert blob_store.size_of(doomed) is None
    with pytest.raises(StoredBlobMissingError):
        read_all(blob_store, doomed)
    assert list(blob_store.list_blobs()) == [kept]


def test_list_blobs_lists_every_committed_blob(blob_store: BlobStore) -> None:
    stored = {store_blob(blob_store, f"blob {i}".encode()) for i in range(5)}
    assert sorted(blob_store.list_blobs()) == sorted(stored)


def write_part(store: BlobStore, upload_id: str, part_name: str, data: bytes) -> None:
    writer = store.open_part_writer(upload_id, part_name)
    writer.write(data)
    writer.commit("ignored")


def test_upload_parts_lifecycle(blob_store: BlobStore) -> None:
    big = payload(6 * MiB, seed=5)  # a multipart upload on S3
    writer = blob_store.open_part_writer("upload-a", "0")
    writer.write(big)
    with pytest.raises(StoredBlobMissingError):
        b"".join(blob_store.read_part("upload-a", "0"))
    writer.commit("ignored")
    write_part(blob_store, "upload-a", "1", b"second part")
    write_part(blob_store, "upload-b", "0", b"other upload")

    assert b"".join(blob_store.read_part("upload-a", "0")) == big
    assert b"".join(blob_store.read_part("upload-a", "1")) == b"second part"
    assert blob_store.list_upload_ids() == ["upload-a", "upload-b"]
    assert list(blob_store.list_blobs()) == []  # parts are never blobs

    blob_store.delete_part("upload-a", "1")
    blob_store.delete_part("upload-a", "1")
    with pytest.raises(StoredBlobMissingError):
        b"".join(blob_store.read_part("upload-a", "1"))
    assert b"".join(blob_store.read_part("upload-a", "0")) == big

    blob_store.delete_upload("upload-a")
    blob_store.delete_upload("upload-a")
    blob_store.delete_upload("never-existed")
    assert blob_store.list_upload_ids() == ["upload-b"]
    with pytest.raises(StoredBlobMissingError):
        b"".join(blob_store.read_part("upload-a", "0"))
    assert b"".join(blob_store.read_part("upload-b", "0")) == b"other upload"


@pytest.mark.parametrize("size", [0, 1000, 6 * MiB + 1])  # 6 MiB: a multipart part on S3
def test_a_promoted_part_is_published_as_the_blob(blob_store: BlobStore, size: int) -> None:
    data = payload(size, seed=7)
    hex_digest = digest_of(data)
    writer = blob_store.open_part_writer("upload-p", "0")
    writer.write(data)
    writer.commit("ignored")
    assert blob_store.size_of(hex_digest) is None  # a part is no blob

    blob_store.promote_part("upload-p", "0", hex_digest)

    assert read_all(blob_store, hex_digest) == data
    assert blob_store.size_of(hex_digest) == size
    assert list(blob_store.list_blobs()) == [hex_digest]
    blob_store.delete_upload("upload-p")  # the caller's next step; the blob stays
    assert read_all(blob_store, hex_digest) == data


def test_a_promoted_part_replaces_bytes_that_do_not_hash_to_the_key(
    blob_store: BlobStore,
) -> None:
    data = payload(3000, seed=8)
    hex_digest = digest_of(data)
    writer = blob_store.open_writer()
    writer.write(b"damaged bytes")
    writer.commit(hex_digest)
    write_part(blob_store, "upload-q", "0", data)

    blob_store.promote_part("upload-q", "0", hex_digest)

    assert read_all(blob_store, hex_digest) == data


def test_promoting_a_missing_part_publishes_nothing(blob_store: BlobStore) -> None:
    hex_digest = digest_of(b"never written")
    with pytest.raises(StoredBlobMissingError):
        blob_store.promote_part("upload-r", "0", hex_digest)
    write_part(blob_store, "upload-r", "1", b"another part")
    with pytest.raises(StoredBlobMissingError):
        blob_store.promote_part("upload-r", "0", hex_digest)
    assert blob_store.size_of(hex_digest) is None
    assert list(blob_store.list_blobs()) == []


def test_aborted_part_is_not_stored(blob_store: BlobStore) -> None:
    writer = blob_store.open_part_writer("upload-c", "0")
    writer.write(payload(6 * MiB, seed=6))
    writer.abort()

    with pytest.raises(StoredBlobMissingError):
        b"".join(blob_store.read_part("upload-c", "0"))


def test_unsafe_names_are_refused(blob_store: BlobStore) -> None:
    for upload_id, part_name in [("../escape", "0"), ("ok", "a/b"), ("", "0"), ("ok", "..")]:
        with pytest.raises(ValueError, match="unsafe"):
            blob_store.open_part_writer(upload_id, part_name)
        with pytest.raises(ValueError, match="unsafe"):
            blob_store.promote_part(upload_id, part_name, "0" * 64)
    with pytest.raises(ValueError, match="unsafe"):
        blob_store.promote_part("ok", "0", "../escape")


def test_check_passes_and_leaves_nothing_behind(blob_store: BlobStore) -> None:
    blob_store.check()
    assert list(blob_store.list_blobs()) == []
    assert blob_store.list_upload_ids() == []


def test_purge_removes_staged_writes_idle_past_the_bound(store_recipe: StoreRecipe) -> None:
    clock = FakeClock()
    blob_store = store_recipe(now=clock.time)
    stalled = blob_store.open_writer()  # a live request whose client stopped sending
    data = payload(6 * MiB, seed=7)
    stalled.write(data)
    assert (
        blob_store.purge_staging(idle_seconds=3600, lifetime_seconds=3600) == 0
    )  # still fresh: kept
    clock.advance(60)  # more than S3's whole-second stamps can hide
    assert blob_store.purge_staging(idle_seconds=0, lifetime_seconds=0) >= 1
    with pytest.raises(StorageUnavailableError):  # its bytes are gone: it cannot publish
        stalled.commit(digest_of(data))
    assert blob_store.size_of(digest_of(data)) is None
    kept = store_blob(blob_store, payload(1000, seed=8))
    assert blob_store.size_of(kept) == 1000
    assert (
        blob_store.purge_staging(idle_seconds=0, lifetime_seconds=0) == 0
    )  # published blobs are never touched
    assert blob_store.size_of(kept) == 1000


def test_purge_keeps_live_writes_which_then_publish(blob_store: BlobStore) -> None:
    data = payload(6 * MiB, seed=9)
    blob_writer = blob_store.open_writer()
    part_writer = blob_store.open_part_writer("upload-live", "0")
    for writer in (blob_writer, part_writer):
        writer.write(data)

    assert blob_store.purge_staging(idle_seconds=60, lifetime_seconds=60) == 0

    blob_writer.commit(digest_of(data))
    part_writer.commit("ignored")
    assert read_all(blob_store, digest_of(data)) == data
    assert b"".join(blob_store.read_part("upload-live", "0")) == data


def test_a_killed_writers_staged_bytes_are_purged(store_recipe: StoreRecipe) -> None:
    die_mid_write(store_recipe)  # a monolithic PUT's process killed mid-body
    die_mid_write(store_recipe, upload_id="upload-killed")  # a chunk's
    clock = FakeClock()
    blob_store = store_recipe(now=clock.time)
    clock.advance(60)  # S3 cannot tell them dead: it waits out the idle bound

    assert blob_store.purge_staging(idle_seconds=0, lifetime_seconds=0) >= 2
    assert blob_store.purge_staging(idle_seconds=0, lifetime_seconds=0) == 0  # nothing was left
    assert list(blob_store.list_blobs()) == []  # and nothing ever became visible
    assert blob_store.list_upload_ids() == []


def test_modified_at_is_when_the_blob_was_written(blob_store: BlobStore) -> None:
    before = time.time()
    hex_digest = store_blob(blob_store, b"dated")

    stamp = blob_store.modified_at(hex_digest)
    assert stamp is not None
    assert before - 5 <= stamp <= time.time() + 5  # S3 stamps with its own clock, in seconds
    assert blob_store.modified_at(digest_of(b"absent")) is None
