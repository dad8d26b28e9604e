"""A crash leaves nothing behind: the restarted registry records the blobs a killed
request published but never recorded, and removes the partial writes it left."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from registry.app import Services, create_asgi, open_blob_store
from registry.core.roles import Role
from registry.domain.blobs.reconcile import StoreReconciler
from tests.conftest import Deployment
from tests.support.content import digests
from tests.support.crash import die_mid_write
from tests.support.s3 import S3Endpoint, s3_client


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
    ttl = "24h"
    if deployment.name == "production":
        ttl = "1s"
        time.sleep(2.1)  # one second idle on a clock that ticks in whole seconds
    services = deployment.services(RELIQUARY_UPLOAD_TTL=ttl)
    with deployment.client(create_asgi(services.settings, services=services)):
        wait_for_first_pass(services)
    assert (reconciled(services, "staged_write") or 0) >= 2
    if deployment.name == "embedded":
        assert list((settings.storage.root / "_staging").iterdir()) == []
    else:
        endpoint = S3Endpoint(
            deployment.env["RELIQUARY_S3_ENDPOINT_URL"],
            deployment.env["RELIQUARY_S3_ACCESS_KEY_ID"],
            deployment.env["RELIQUARY_S3_SECRET_ACCESS_KEY"],
            deployment.env["RELIQUARY_S3_REGION"],
        )
        bucket = deployment.env["RELIQUARY_S3_BUCKET"]
        assert s3_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert services.store.list_upload_ids() == []
    assert list(services.store.list_blobs()) == []
