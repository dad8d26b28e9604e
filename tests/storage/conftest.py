"""The ``blob_store`` fixture: every storage test runs once per backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.storage.base import BlobStore
from registry.storage.filesystem import FilesystemBlobStore
from tests.support.s3 import S3Endpoint, create_bucket, delete_bucket, s3_blob_store, s3_endpoint


@pytest.fixture(scope="session")
def s3_test_endpoint() -> Iterator[S3Endpoint]:
    with s3_endpoint() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_test_endpoint: S3Endpoint) -> Iterator[str]:
    """A fresh, empty bucket, deleted with everything in it afterwards."""
    name = f"reliquary-test-{uuid.uuid4().hex[:20]}"
    create_bucket(s3_test_endpoint, name)
    yield name
    delete_bucket(s3_test_endpoint, name)


@pytest.fixture(params=["filesystem", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each backend in turn; S3 gets its own bucket and 5 MiB parts."""
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "store")
    endpoint: S3Endpoint = request.getfixturevalue("s3_test_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    return s3_blob_store(endpoint, bucket)
