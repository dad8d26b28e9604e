"""The ``blob_store`` fixture: every storage test runs once per backend."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.storage.base import BlobStore
from registry.storage.filesystem import FilesystemBlobStore
from tests.support.s3 import S3Endpoint, create_bucket, delete_bucket, s3_blob_store
from tests.support.stores import StoreRecipe


@pytest.fixture
def s3_bucket(s3: S3Endpoint) -> Iterator[str]:
    """A fresh, empty bucket on the session's S3 endpoint (``s3``), deleted with everything
    in it afterwards: tests share the endpoint and are kept apart by their buckets."""
    name = f"reliquary-test-{uuid.uuid4().hex[:20]}"
    create_bucket(s3, name)
    yield name
    delete_bucket(s3, name)


@pytest.fixture(params=["filesystem", "s3"])
def store_recipe(request: pytest.FixtureRequest, tmp_path: Path) -> StoreRecipe:
    """How to open each backend in turn; picklable, so that another process (one the
    test kills mid-write) opens the same store. S3 gets its own bucket and 5 MiB parts."""
    if request.param == "filesystem":
        return functools.partial(FilesystemBlobStore, tmp_path / "store")
    endpoint: S3Endpoint = request.getfixturevalue("s3")
    bucket: str = request.getfixturevalue("s3_bucket")
    return functools.partial(s3_blob_store, endpoint, bucket)


@pytest.fixture
def blob_store(store_recipe: StoreRecipe) -> BlobStore:
    """Each backend in turn (see ``store_recipe``)."""
    return store_recipe()
