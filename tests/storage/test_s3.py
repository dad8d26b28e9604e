"""What only the S3 backend promises: its key layout, its cleanup, its errors.

The behaviour every backend shares lives in test_conformance.py.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Callable

import pytest
from blake3 import blake3

from registry.storage.base import StorageUnavailableError, blob_key
from registry.storage.s3 import S3BlobStore
from tests.support.clock import FakeClock
from tests.support.crash import die_mid_write
from tests.support.s3 import S3Endpoint, s3_blob_store, s3_client

MiB = 1024 * 1024
PREFIX = "reliquary/"


def bucket_keys(endpoint: S3Endpoint, bucket: str) -> set[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def open_multipart_uploads(endpoint: S3Endpoint, bucket: str) -> list[str]:
    uploads = s3_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [upload["Key"] for upload in uploads]


def test_commit_leaves_only_the_blob_and_part_keys(s3: S3Endpoint, s3_bucket: str) -> None:
    store = s3_blob_store(s3, s3_bucket, prefix=PREFIX)
    big, small = b"x" * (6 * MiB), b"small"
    hexes = []
    for data in (big, small, big):  # the second `big` finds its key taken
        writer = store.open_writer()
        writer.write(data)
        writer.commit(blake3(data).hexdigest())
        hexes.append(blake3(data).hexdigest())
    part = store.open_part_writer("u1", "0")
    part.write(big)
    part.commit("ignored")

    assert bucket_keys(s3, s3_bucket) == {
        PREFIX + blob_key(hexes[0]),
        PREFIX + blob_key(hexes[1]),
        PREFIX + "_uploads/u1/0",
    }
    assert open_multipart_uploads(s3, s3_bucket) == []


def test_nothing_lands_at_the_blob_key_before_commit(s3: S3Endpoint, s3_bucket: str) -> None:
    store = s3_blob_store(s3, s3_bucket, prefix=PREFIX)
    writer = store.open_writer()
    writer.write(b"y" * (11 * MiB))  # two parts uploaded, a third buffered

    [staging] = open_multipart_uploads(s3, s3_bucket)
    assert staging.startswith(PREFIX + "_staging/")
    assert bucket_keys(s3, s3_bucket) == set()


def test_abort_removes_the_multipart_upload(s3: S3Endpoint, s3_bucket: str) -> None:
    store = s3_blob_store(s3, s3_bucket, prefix=PREFIX)
    for writer in (store.open_writer(), store.open_part_writer("u1", "0")):
        writer.write(b"z" * (6 * MiB))
        writer.abort()

    assert open_multipart_uploads(s3, s3_bucket) == []
    assert bucket_keys(s3, s3_bucket) == set()


def test_a_staged_write_is_idle_from_its_last_part_not_its_start(
    s3: S3Endpoint, s3_bucket: str
) -> None:
    clock = FakeClock(ahead_seconds=-3600)
    store = s3_blob_store(s3, s3_bucket, prefix=PREFIX, now=clock.time)
    data = b"s" * (11 * MiB)
    writer = store.open_writer()  # an hour ago (its staging key's name says so)
    clock.advance(3600)
    writer.write(data[: 6 * MiB])  # part 1 now: a slow client, alive
    writer.write(data[6 * MiB :])  # part 2

    assert (
        store.purge_staging(idle_seconds=60, lifetime_seconds=60) == 0
    )  # started long ago, but not idle
    writer.commit(blake3(data).hexdigest())
    assert store.size_of(blake3(data).hexdigest()) == len(data)


def test_a_finished_staging_object_is_kept_past_the_idle_bound_until_copied(
    s3: S3Endpoint, s3_bucket: str
) -> None:
    """AWS may date a completed multipart object by its upload's initiation (about when
    the PUT began), so a PUT that took longer than the idle bound looks idle the moment
    its upload completes: a purge then must not take it before the copy."""
    clock = FakeClock()
    store = s3_blob_store(s3, s3_bucket, prefix=PREFIX, now=clock.time)
    data = b"c" * (6 * MiB)
    writer = store.open_writer()
    writer.write(data)
    purged: list[int] = []

    def purge_before_the_copy(**_: object) -> None:
        if not purged:  # between completing the staging upload and copying it
            clock.advance(60)  # now older than idle 0, younger than the lifetime
            purged.append(store.purge_staging(idle_seconds=0, lifetime_seconds=3600))

    store.client.meta.events.register("before-call.s3.CopyObject", purge_before_the_copy)
    writer.commit(blake3(data).hexdigest())

    assert purged == [0]
    assert b"".join(store.read(blake3(data).hexdigest())) == data
    assert bucket_keys(s3, s3_bucket) == {PREFIX + blob_key(blake3(data).hexdigest())}

    # a commit that died after completing its upload leaves one: it goes past the lifetime
    s3_client(s3).put_object(
        Bucket=s3_bucket, Key=PREFIX + "_staging/0000000000000-dead", Body=b"finished"
    )
    clock.advance(60)
    assert store.purge_staging(idle_seconds=0, lifetime_seconds=3600) == 0
    assert store.purge_staging(idle_seconds=0, lifetime_seconds=0) == 1
    assert bucket_keys(s3, s3_bucket) == {PREFIX + blob_key(blake3(data).hexdigest())}


def test_a_killed_chunks_unfinished_multipart_upload_is_purged(
    s3: S3Endpoint, s3_bucket: str
) -> None:
    die_mid_write(
        functools.partial(s3_blob_store, s3, s3_bucket, prefix=PREFIX),
        upload_id="u1",
    )
    [unfinished] = open_multipart_uploads(s3, s3_bucket)
    assert unfinished.startswith(PREFIX + "_uploads/u1/")
    clock = FakeClock(ahead_seconds=60)  # S3 cannot tell it dead: it waits out the idle bound

    store = s3_blob_store(s3, s3_bucket, prefix=PREFIX, now=clock.time)
    assert store.purge_staging(idle_seconds=0, lifetime_seconds=0) == 1
    assert open_multipart_uploads(s3, s3_bucket) == []


def test_delete_upload_aborts_its_unfinished_parts(s3: S3Endpoint, s3_bucket: str) -> None:
    store = s3_blob_store(s3, s3_bucket, prefix=PREFIX)
    write_part = store.open_part_writer("u1", "0")
    write_part.write(b"p" * (6 * MiB))  # a chunk still arriving when its session goes

    store.delete_upload("u1")

    assert open_multipart_uploads(s3, s3_bucket) == []
    with pytest.raises(StorageUnavailableError):
        write_part.commit("ignored")
    assert bucket_keys(s3, s3_bucket) == set()


def test_a_missing_bucket_fails_check_as_unavailable(s3: S3Endpoint) -> None:
    store = s3_blob_store(s3, "reliquary-no-such-bucket")
    with pytest.raises(StorageUnavailableError, match="bucket"):
        store.check()
    with pytest.raises(StorageUnavailableError, match="NoSuchBucket"):
        store.list_upload_ids()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_an_unreachable_endpoint_raises_storage_unavailable() -> None:
    endpoint_url = f"http://127.0.0.1:{closed_port()}"
    store = S3BlobStore(
        "reliquary",
        endpoint_url=endpoint_url,
        access_key_id="testing",
        secret_access_key="testing",
        max_attempts=1,
    )
    hex_digest = blake3(b"").hexdigest()
    writer = store.open_writer()
    writer.write(b"data")
    calls: list[Callable[[], object]] = [
        store.check,
        lambda: store.size_of(hex_digest),
        lambda: store.read(hex_digest),
        lambda: list(store.list_blobs()),
        store.list_upload_ids,
        lambda: store.delete(hex_digest),
        lambda: writer.commit(hex_digest),
    ]
    for call in calls:
        with pytest.raises(StorageUnavailableError, match="check the endpoint URL") as caught:
            call()
        assert endpoint_url in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"part_size_bytes": MiB}, {"prefix": "/abs"}, {"access_key_id": "only-half"}],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, str | int]) -> None:
    with pytest.raises(ValueError):
        S3BlobStore("bucket", endpoint_url="http://127.0.0.1:9", **kwargs)  # type: ignore[arg-type]


def test_a_blob_writer_without_parts_is_dated_by_its_key_not_initiated(
    s3: S3Endpoint, s3_bucket: str
) -> None:
    """A writer that has just created its multipart upload has sent no part: only the
    upload's ``Initiated`` dates it, which some stores misreport (moto says 2010). A
    blob writer's staging key names when it began, so a live one is kept and one that
    began long ago goes, in one pass."""
    store = s3_blob_store(s3, s3_bucket)
    client = s3_client(s3)
    now_ms = int(time.time() * 1000)
    live = store.key(f"_staging/{now_ms:013d}-{'a' * 16}")
    dead = store.key(f"_staging/{now_ms - 3_600_000:013d}-{'b' * 16}")
    for key in (live, dead):
        client.create_multipart_upload(Bucket=s3_bucket, Key=key)
    assert store.purge_staging(60, lifetime_seconds=60) == 1
    assert open_multipart_uploads(s3, s3_bucket) == [live]


def test_an_object_put_by_hand_among_the_blobs_is_not_listed(
    s3: S3Endpoint, s3_bucket: str
) -> None:
    store = s3_blob_store(s3, s3_bucket, prefix=PREFIX)
    data = b"a blob beside a hand-put object"
    writer = store.open_writer()
    writer.write(data)
    writer.commit(blake3(data).hexdigest())
    s3_client(s3).put_object(Bucket=s3_bucket, Key=PREFIX + "blobs/blake3/README", Body=b"hi")
    assert list(store.list_blobs()) == [blake3(data).hexdigest()]
