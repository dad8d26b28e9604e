"""A crash leaves nothing behind: the restarted registry records the blobs a killed
request published but never recorded, and removes the partial writes it left."""

from __future__ import annotations

import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.app import Services, create_asgi, open_blob_store
from registry.core.roles import Role
from registry.db.engine import make_session_factory
from registry.domain.blobs.reconcile import STAGED_WRITE_IDLE_SECONDS, Examined, StoreReconciler
from registry.domain.blobs.repositories import BlobRepository
from registry.storage import StoredBlobMissingError
from tests.conftest import Deployment
from tests.support.clock import FakeClock
from tests.support.content import digests
from tests.support.crash import die_mid_write
from tests.support.s3 import endpoint_of, s3_client


def publish_without_row(services: Services, data: bytes, name: str | None = None) -> str:
    """What a request killed between publishing its bytes and committing its row leaves."""
    blake3_hex = name or digests(data).blake3.hex
    writer = services.store.open_writer()
    writer.write(data)
    writer.commit(blake3_hex)
    return blake3_hex


def wait_for_first_pass(services: Services) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = services.metrics.registry.get_sample_value(
            "reliquary_store_reconcile_runs_total", {"outcome": "ok"}
        )
        if runs:
            return
        time.sleep(0.05)
    raise AssertionError("no reconciliation pass finished within 30 s of the start")


def reconciled(services: Services, what: str) -> float | None:
    return services.metrics.registry.get_sample_value(
        "reliquary_store_reconciled_total", {"what": what}
    )


def test_a_blob_published_but_never_recorded_is_recorded_at_start(
    deployment: Deployment,
) -> None:
    token = {"authorization": f"Bearer {deployment.token(Role.READER)}"}
    data = os.urandom(3 * 1024 * 1024)
    before = deployment.services()
    orphan = publish_without_row(before, data)
    report = before.blobs.fsck()
    assert report.orphaned == [orphan]  # what `fsck` found after 7 of 14 crashes

    services = deployment.services()
    with deployment.client(create_asgi(services.settings, services=services)) as client:
        wait_for_first_pass(services)
        head = client.head(f"/v1/blobs/{digests(data).sha256}", headers=token)
        assert head.status_code == 200
        assert head.headers["reliquary-blake3"] == str(digests(data).blake3)
        assert client.get(f"/v1/blobs/blake3:{orphan}", headers=token).content == data
    assert reconciled(services, "orphan_recorded") == 1
    assert services.blobs.fsck().clean


def test_bytes_that_do_not_hash_to_their_name_are_removed_once_settled(
    deployment: Deployment,
) -> None:
    services = deployment.services()
    wrong = digests(b"the bytes this name promises").blake3.hex
    publish_without_row(services, b"something else", name=wrong)

    patient = StoreReconciler(services.blobs, services.uploads, services.metrics)
    assert patient.run().orphans_removed == []  # just written: perhaps a push replaces it
    assert services.store.size_of(wrong) is not None
    assert services.blobs.find(digests(b"the bytes this name promises").blake3) is None

    settled = StoreReconciler(
        services.blobs, services.uploads, services.metrics, corrupt_grace_seconds=0
    )
    assert settled.run().orphans_removed == [wrong]
    assert services.store.size_of(wrong) is None
    assert services.blobs.find(digests(b"the bytes this name promises").blake3) is None
    assert services.blobs.fsck().clean


def test_a_killed_uploads_partial_writes_are_removed_at_start(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment.settings()
    open_store = functools.partial(open_blob_store, settings)
    size = 17 * 1024 * 1024  # more than one part of the S3 store: S3 holds some of it
    die_mid_write(open_store, size_bytes=size)  # a monolithic PUT killed mid-body
    die_mid_write(open_store, upload_id="0" * 32, size_bytes=size)  # a chunk, never recorded
    # S3 cannot tell a dead writer from a live one: it waits out the idle bound (at
    # most the upload TTL); the filesystem knows at once, whatever the bound
    clock = FakeClock()
    if deployment.name == "production":
        clock.advance(STAGED_WRITE_IDLE_SECONDS + 60)
    services = deployment.services(clock.now)
    with deployment.client(create_asgi(services.settings, services=services)):
        wait_for_first_pass(services)
    assert (reconciled(services, "staged_write") or 0) >= 2
    if deployment.name == "embedded":
        assert list((settings.storage.root / "_staging").iterdir()) == []
    else:
        endpoint = endpoint_of(deployment.env)
        bucket = deployment.env["RELIQUARY_S3_BUCKET"]
        assert s3_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert services.store.list_upload_ids() == []
    assert list(services.store.list_blobs()) == []


MiB = 1024 * 1024


def damaged_copy(data: bytes) -> bytes:
    """The same size, one byte flipped: what a failing disk leaves."""
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    return bytes(damaged)


def examine_damaged(services: Services, data: bytes) -> tuple[StoreReconciler, Examined]:
    """Damaged bytes stored under ``data``'s name with no row, examined by a reconciler
    that removes such bytes at once (no grace)."""
    name = digests(data).blake3.hex
    publish_without_row(services, damaged_copy(data), name=name)
    reconciler = StoreReconciler(
        services.blobs, services.uploads, services.metrics, corrupt_grace_seconds=0
    )
    examined = reconciler.examine(name)
    assert examined is not None
    assert not examined.verified
    return reconciler, examined


@pytest.mark.parametrize("size_bytes", [3 * MiB, 17 * MiB], ids=["single-put", "multipart"])
def test_a_push_replaces_damaged_bytes_stored_under_its_digest(
    deployment: Deployment, size_bytes: int
) -> None:
    """Bytes at a blob key that do not hash to its name, with no row: a push of that
    digest (within the grace period, before the reconciler removes them) must not
    record its row over them. S3 used to skip writing a key that existed."""
    auth = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    services = deployment.services()
    data = os.urandom(size_bytes)
    d = digests(data)
    publish_without_row(services, damaged_copy(data), name=d.blake3.hex)

    with deployment.client(create_asgi(services.settings, services=services)) as client:
        wait_for_first_pass(services)  # it keeps them: within the grace period
        assert client.put(f"/v1/blobs/{d.sha256}", content=data, headers=auth).status_code == 201
        served = client.get(f"/v1/blobs/{d.blake3}", headers=auth)
        assert served.status_code == 200
        assert digests(served.content) == d
    assert services.blobs.fsck(deep=True).clean


def test_damaged_bytes_a_push_replaced_after_they_were_examined_are_kept(
    deployment: Deployment,
) -> None:
    """The reconciler examines damaged unrecorded bytes; before it removes them, a push
    of that digest on another replica replaces them and records its row. The removal
    must see the row and remove nothing."""
    auth = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    services = deployment.services()
    data = os.urandom(MiB)
    d = digests(data)
    reconciler, examined = examine_damaged(services, data)

    replica = deployment.services()
    with deployment.client(create_asgi(replica.settings, services=replica)) as client:
        wait_for_first_pass(replica)
        assert client.put(f"/v1/blobs/{d.blake3}", content=data, headers=auth).status_code == 201
        assert reconciler.settle(examined) is None  # a row names the digest now
        assert client.get(f"/v1/blobs/{d.blake3}", headers=auth).content == data
    assert services.blobs.fsck(deep=True).clean


def test_no_row_is_recorded_for_bytes_removed_after_they_were_published(
    deployment: Deployment,
) -> None:
    """A push publishes good bytes over damaged ones just as a reconciler (which judged
    the damaged ones) removes what is at the key: the push must then record nothing,
    and say to push again, rather than name bytes the store no longer holds."""
    services = deployment.services()
    data = os.urandom(MiB)
    d = digests(data)
    publish_without_row(services, damaged_copy(data), name=d.blake3.hex)
    publish_without_row(services, data)  # the push's publish
    services.store.delete(d.blake3.hex)  # the removal, within the same clock tick

    with pytest.raises(StoredBlobMissingError, match="push it again"):
        services.blobs.record(d)  # the push's row
    assert services.blobs.find(d.blake3) is None
    assert services.blobs.fsck().clean
    auth = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    with deployment.client(create_asgi(services.settings, services=services)) as client:
        wait_for_first_pass(services)
        assert client.put(f"/v1/blobs/{d.blake3}", content=data, headers=auth).status_code == 201
        assert client.get(f"/v1/blobs/{d.blake3}", headers=auth).content == data


def advisory_lock_waiters(deployment: Deployment) -> int:
    with deployment.engine.connect() as connection:
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return int(connection.execute(text(query)).scalar_one())


# SQLite needs no test here: its write transactions are exclusive (BEGIN IMMEDIATE), so a
# record and a removal never overlap. PostgreSQL replicas take the digest's advisory lock.
@pytest.mark.parametrize("deployment", ["production"], indirect=True)
def test_the_reconciler_leaves_damaged_bytes_alone_while_a_push_records_them(
    deployment: Deployment,
) -> None:
    services = deployment.services()
    data = os.urandom(MiB)
    reconciler, examined = examine_damaged(services, data)
    writes = make_session_factory(deployment.engine)

    with writes.begin() as session:  # another replica's push, between publish and row
        assert BlobRepository(session).guard(examined.blake3_hex, exclusive=False)
        assert reconciler.settle(examined) is None  # never waits: the next pass will do
        assert services.store.size_of(examined.blake3_hex) == len(data)
    assert reconciler.settle(examined) == "removed"
    assert services.store.size_of(examined.blake3_hex) is None


@pytest.mark.parametrize("deployment", ["production"], indirect=True)
def test_a_push_waits_for_a_removal_under_way_and_then_records_nothing(
    deployment: Deployment,
) -> None:
    services = deployment.services()
    data = os.urandom(MiB)
    d = digests(data)
    publish_without_row(services, damaged_copy(data), name=d.blake3.hex)
    writes = make_session_factory(deployment.engine)

    with writes.begin() as session, ThreadPoolExecutor(max_workers=1) as pool:
        # another replica's reconciler, inside its removal: it has found no row
        assert BlobRepository(session).guard(d.blake3.hex, exclusive=True)
        assert BlobRepository(session).get(d.blake3) is None
        publish_without_row(services, data)  # a push publishes good bytes now ...
        recording = pool.submit(services.blobs.record, d)  # ... and records its row
        deadline = time.monotonic() + 30
        while advisory_lock_waiters(deployment) == 0:  # the push waits on the guard
            assert time.monotonic() < deadline, "the push did not wait for the removal"
            time.sleep(0.01)
        services.store.delete(d.blake3.hex)  # the removal (it read the stamp before)
        session.commit()
        with pytest.raises(StoredBlobMissingError):
            recording.result(timeout=30)
    assert services.blobs.find(d.blake3) is None
    assert services.blobs.fsck().clean
