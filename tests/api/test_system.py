"""Operators: liveness, readiness that tells what is broken, and Prometheus metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

from registry.core.roles import Role
from tests.conftest import Api, Deployment
from tests.support.content import digests


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}


def test_readiness_fails_when_storage_is_unreachable(
    deployment: Deployment, tmp_path: Path
) -> None:
    if deployment.name == "embedded":
        root = tmp_path / "broken-blobs"
        client = deployment.client(RELIQUARY_BLOB_DIR=str(root))
        shutil.rmtree(root / "_staging")
        (root / "_staging").write_bytes(b"not a directory")  # nothing can be staged now
    else:  # nothing listens on the discard port
        client = deployment.client(RELIQUARY_S3_ENDPOINT_URL="http://127.0.0.1:9")
    with client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["type"] == "https://reliquary.dev/problems/unavailable"
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["storage"].startswith("unavailable")


def test_metrics_count_requests_and_bytes(api: Api) -> None:
    data = b"m" * 10_000
    d = digests(data)
    api.client.put(f"/v1/blobs/{d.blake3}", content=data, headers=api.auth())
    api.client.get(f"/v1/blobs/{d.blake3}", headers=api.auth(Role.READER))
    text = api.client.get("/metrics").text
    assert (
        'reliquary_http_requests_total{method="PUT",route="/v1/blobs/{digest}",status="201"} 1.0'
        in text
    )
    assert "reliquary_blob_bytes_received_total 10000.0" in text
    assert "reliquary_blob_bytes_sent_total 10000.0" in text
    assert 'reliquary_blob_upload_duration_seconds_count{outcome="stored"} 1.0' in text
