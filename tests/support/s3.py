"""A real S3 endpoint for tests: moto's HTTP server on loopback, or any other.

By default ``s3_endpoint()`` starts ``moto.server.ThreadedMotoServer`` on
127.0.0.1 (a free port) and boto3 talks to it over HTTP, unchanged. Set
``RELIQUARY_TEST_S3_ENDPOINT`` (with ``RELIQUARY_TEST_S3_ACCESS_KEY_ID``,
``RELIQUARY_TEST_S3_SECRET_ACCESS_KEY`` and optionally
``RELIQUARY_TEST_S3_REGION``) to run the same tests against MinIO or S3.
The session fixture ``s3`` (tests/conftest.py) is its one caller: one endpoint per
test session, shared by the API and storage tests, each test in its own bucket.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from registry.storage.base import StoreClock
from registry.storage.s3 import MIN_PART_BYTES, S3BlobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str


@contextlib.contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    """Yield a reachable S3 endpoint; raises RuntimeError if the env names one without keys."""
    external = os.environ.get("RELIQUARY_TEST_S3_ENDPOINT")
    if external:
        key_id = os.environ.get("RELIQUARY_TEST_S3_ACCESS_KEY_ID")
        secret = os.environ.get("RELIQUARY_TEST_S3_SECRET_ACCESS_KEY")
        if not key_id or not secret:
            raise RuntimeError(
                "RELIQUARY_TEST_S3_ENDPOINT is set: also set RELIQUARY_TEST_S3_ACCESS_KEY_ID "
                "and RELIQUARY_TEST_S3_SECRET_ACCESS_KEY"
            )
        region = os.environ.get("RELIQUARY_TEST_S3_REGION", "us-east-1")
        yield S3Endpoint(external, key_id, secret, region)
        return

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Endpoint(f"http://{host}:{port}", "testing", "testing", "us-east-1")
    finally:
        server.stop()


def endpoint_of(env: dict[str, str]) -> S3Endpoint:
    """The S3 endpoint a deployment's ``RELIQUARY_S3_*`` settings name."""
    return S3Endpoint(
        env["RELIQUARY_S3_ENDPOINT_URL"],
        env["RELIQUARY_S3_ACCESS_KEY_ID"],
        env["RELIQUARY_S3_SECRET_ACCESS_KEY"],
        env["RELIQUARY_S3_REGION"],
    )


@functools.cache
def s3_client(endpoint: S3Endpoint) -> S3Client:
    """A plain boto3 client for the endpoint, to look behind a store's back (shared)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint.endpoint_url,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def create_bucket(endpoint: S3Endpoint, name: str) -> None:
    client = s3_client(endpoint)
    if endpoint.region == "us-east-1":
        client.create_bucket(Bucket=name)
    else:
        client.create_bucket(
            Bucket=name,
            CreateBucketConfiguration={"LocationConstraint": endpoint.region},  # type: ignore[typeddict-item]
        )


def delete_bucket(endpoint: S3Endpoint, name: str) -> None:
    """Empty the bucket (objects and unfinished multipart uploads), then delete it."""
    client = s3_client(endpoint)
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


def s3_blob_store(
    endpoint: S3Endpoint,
    bucket: str,
    *,
    prefix: str = "reliquary/",
    now: StoreClock | None = None,
) -> S3BlobStore:
    """A store with the smallest part size S3 allows, so small blobs take the multipart path
    (``now``: see ``S3BlobStore``)."""
    return S3BlobStore(
        bucket,
        endpoint_url=endpoint.endpoint_url,
        region=endpoint.region,
        prefix=prefix,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key,
        part_size_bytes=MIN_PART_BYTES,
        now=now,
    )
