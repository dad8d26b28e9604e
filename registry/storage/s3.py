"""S3 (and S3-compatible: MinIO, Ceph, R2) blob store.

Layout under ``<prefix>`` in one bucket: ``blobs/blake3/<xx>/<hex>`` (published
blobs), ``_staging/<random>`` (blobs being written), ``_uploads/<id>/<part>``
(parts of resumable uploads).

Invariants, on top of those in ``base``:

- A blob's digest is known only at commit, so its bytes stream into a multipart
  upload on a staging key, ``part_size_bytes`` at a time (memory stays bounded
  by one part). ``commit`` completes that upload, then server-side copies the
  staging object to the blob key and deletes the staging object. A blob smaller
  than one part is a single ``PutObject`` straight to its key at commit. Either
  way the key is written even when it already exists: bytes already there are
  never trusted (they may not hash to their name), and a commit replaces them.
  S3 makes an object visible only when its upload or copy completes, so nothing
  ever appears at a blob key before ``commit`` and a reader never sees a partial
  blob.
- An upload part streams straight to its own key; it too is invisible until
  ``commit`` completes its upload. ``promote_part`` publishes a part as a blob by a
  server-side copy to the blob key (multipart past 256 MiB, so beyond 5 GiB too),
  visible only once the copy completes.
- ``abort`` (and a failed ``commit``) aborts the multipart upload and deletes
  any staging object. A crashed process can leave both behind (and unfinished
  multipart uploads of upload parts under ``_uploads/``): ``purge_staging``, which
  the registry runs at start and periodically, removes those that have received
  no bytes for its idle bound, measured on S3's own clock (the ``Date`` of its
  answers against a part's ``LastModified``), since S3 cannot tell a live writer
  from a dead one. A *finished* staging object (a commit died between completing
  its upload and copying it) is dated only by its ``LastModified``, which AWS
  may set to the multipart upload's initiation time, i.e. about when the PUT
  began: it goes only past the lifetime bound (the upload TTL), never the idle
  one, so that a PUT that took longer than the idle bound does not lose its
  staging object between its upload completing and its copy. A single PUT that
  lasts longer than the upload TTL could still lose it; its commit then fails
  (503) and nothing is recorded. A bucket lifecycle rule
  (AbortIncompleteMultipartUpload, expire ``_staging/`` after a day or more) is
  a good second net.
- Every botocore/boto3 error is translated: a missing key becomes
  ``StoredBlobMissingError``, anything else ``StorageUnavailableError`` with a
  hint at what to check. One client is shared by all threads (boto3 clients
  are thread-safe); a single writer belongs to one thread.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)
from s3transfer.exceptions import S3CopyFailedError

from registry.core.digest import is_hex64
from registry.storage.base import (
    READ_CHUNK_BYTES,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    StoreClock,
    StoredBlobMissingError,
    blob_key,
    safe_name,
    upload_prefix,
)

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's floor for every part but the last
MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
_MAX_PARTS = 10_000
_PARTS_PER_SIZE_STEP = 1_000  # part size grows by one base size every 1,000 parts
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_BOTO_ERRORS = (BotoCoreError, ClientError, Boto3Error, S3CopyFailedError)
_COPY_CONFIG = TransferConfig(
    multipart_threshold=256 * 1024 * 1024, multipart_chunksize=128 * 1024 * 1024
)


def _code(exc: BaseException) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def _is_not_found(exc: BaseException) -> bool:
    return _code(exc) in _NOT_FOUND_CODES


def _server_time(response: Mapping[str, Any]) -> float:
    """S3's clock when it answered (its ``Date`` header); ours if it sent none."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date).timestamp() if date else time.time()
    except (TypeError, ValueError):
        return time.time()


_NAMED_START = re.compile(r".*_staging/([0-9]{13})-[0-9a-f]{16}")


def _named_start(key: str) -> float:
    """When a blob writer began, from its staging key (``open_writer``); 0 if unnamed."""
    match = _NAMED_START.fullmatch(key)
    return int(match.group(1)) / 1000 if match else 0.0


def _unavailable(exc: BaseException, what: str, where: str) -> StorageUnavailableError:
    """Explain a provider error in terms an operator can act on."""
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        hint = "check the endpoint URL and that the S3 service is running and reachable"
    elif isinstance(exc, NoCredentialsError):
        hint = "no credentials found: set the access key id and secret access key"
    elif isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "?")
        hint = f"S3 answered {code}: {error.get('Message', '')}".rstrip(": ")
        if code in ("NoSuchBucket", "AllAccessDisabled"):
            hint += "; check that the bucket exists"
        elif code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            hint += "; check the credentials, region and bucket policy (read, write, list)"
    else:
        hint = f"{type(exc).__name__}: {exc}"
    if _is_full(exc):
        return StorageFullError(f"{what} failed on {where}: the store is full ({hint})")
    return StorageUnavailableError(f"{what} failed on {where}: {hint}")


def _is_full(exc: BaseException) -> bool:
    """An S3-compatible store out of space: HTTP 507 (MinIO's ``XMinioStorageFull``)."""
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 507 or exc.response.get("Error", {}).get("Code") == "XMinioStorageFull"


class _S3Writer:
    """Streams into a multipart upload on ``key``; ``commit`` publishes it.

    For a blob (``for_blob``) ``key`` is a staging key, copied to the blob key at
    commit; for an upload part ``key`` is the part's final key.
    """

    def __init__(self, store: S3BlobStore, key: str, *, for_blob: bool) -> None:
        self._store = store
        self._client = store.client
        self._bucket = store.bucket
        self._key = key
        self._for_blob = for_blob
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._staged = False  # a completed staging object exists and must be deleted
        self._open = True

    def _part_size(self) -> int:
        step = 1 + len(self._parts) // _PARTS_PER_SIZE_STEP
        return min(self._store.part_size_bytes * step, MAX_PART_BYTES)

    def write(self, data: bytes | memoryview) -> None:
        if not self._open:
            raise StorageUnavailableError("write after commit or abort")
        view = memoryview(data).cast("B")
        with self._aborting_on_error("uploading blob data"):
            while view:
                take = min(self._part_size() - len(self._buffer), len(view))
                self._buffer += view[:take]
                view = view[take:]
                if len(self._buffer) >= self._part_size():
                    self._upload_part()

    @contextlib.contextmanager
    def _aborting_on_error(self, what: str) -> Iterator[None]:
        try:
            yield
        except _BOTO_ERRORS as exc:
            self.abort()
            raise _unavailable(exc, what, self._store.description) from exc
        except StorageError:
            self.abort()
            raise

    def _upload_part(self) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        if number > _MAX_PARTS:
            raise StorageUnavailableError(f"blob exceeds {_MAX_PARTS} parts; raise part_size")
        uploaded = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": uploaded["ETag"], "PartNumber": number})
        self._buffer.clear()

    def commit(self, blake3_hex: str) -> None:
        if not self._open:
            raise StorageUnavailableError("commit after commit or abort")
        final = blob_key(safe_name(blake3_hex)) if self._for_blob else None
        with self._aborting_on_error("publishing blob"):
            if self._upload_id is None:
                self._put_whole(final)
            else:
                self._complete_multipart()
                if final is not None:
                    self._publish_staged(self._store.key(final))
        self._open = False

    def _put_whole(self, final: str | None) -> None:
        """A blob or part smaller than one part: one PUT at its final key."""
        key = self._key if final is None else self._store.key(final)
        self._client.put_object(Bucket=self._bucket, Key=key, Body=bytes(self._buffer))
        self._buffer.clear()

    def _complete_multipart(self) -> None:
        if self._buffer or not self._parts:
            self._upload_part()
        assert self._upload_id is not None
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None
        self._staged = self._for_blob

    def _publish_staged(self, final_key: str) -> None:
        self._client.copy(
            CopySource={"Bucket": self._bucket, "Key": self._key},
            Bucket=self._bucket,
            Key=final_key,
            Config=_COPY_CONFIG,
        )
        self._client.delete_object(Bucket=self._bucket, Key=self._key)
        self._staged = False

    def abort(self) -> None:
        self._open = False
        self._buffer = bytearray()
        if self._upload_id is not None:
            with contextlib.suppress(*_BOTO_ERRORS):
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
            self._upload_id = None
        if self._staged:
            with contextlib.suppress(*_BOTO_ERRORS):
                self._client.delete_object(Bucket=self._bucket, Key=self._key)
            self._staged = False


class S3BlobStore:
    """Blobs as objects in one S3 bucket, under an optional key prefix."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = "",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        public_endpoint_url: str | None = None,
        part_size_bytes: int = 16 * 1024 * 1024,
        max_attempts: int = 5,
        connect_timeout_seconds: float = 5.0,
        read_timeout_seconds: float = 60.0,
        now: StoreClock | None = None,
    ) -> None:
        """``now``: the clock staged writes are judged idle by (None: S3's own, from the
        ``Date`` of its answers, immune to skew between hosts).

        Raises ValueError for an empty bucket, a bad prefix or part size."""
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        if prefix.startswith("/"):
            raise ValueError(f"prefix must be relative, got {prefix!r}")
        if not MIN_PART_BYTES <= part_size_bytes <= MAX_PART_BYTES:
            raise ValueError(f"part_size_bytes must be in [5 MiB, 5 GiB], not {part_size_bytes}")
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.part_size_bytes = part_size_bytes
        self._now = now
        where = f"at {endpoint_url}" if endpoint_url else f"in {region or 'the default region'}"
        self.description = f"s3:{bucket}/{self.prefix} {where}"
        config = Config(
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=connect_timeout_seconds,
            read_timeout=read_timeout_seconds,
            max_pool_connections=32,
            tcp_keepalive=True,
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        # A private session: boto3's default session is not thread-safe, the client is.
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )
        # presigned URLs name the endpoint clients reach (signing is local: no requests)
        self._presigner: S3Client = (
            self.client
            if public_endpoint_url is None or public_endpoint_url == endpoint_url
            else boto3.session.Session().client(
                "s3",
                endpoint_url=public_endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config.merge(Config(s3={"addressing_style": "path"})),
            )
        )

    def presigned_get(self, blake3_hex: str, seconds: float) -> str:
        """A URL that GETs the stored blob (Range honoured) without credentials, for
        ``seconds``. Whoever follows it must verify the bytes: the URL proves nothing."""
        key = self.key(blob_key(safe_name(blake3_hex)))
        try:  # local signing, unless the credentials must first be fetched or refreshed
            return self._presigner.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(seconds)
            )
        except _BOTO_ERRORS as exc:
            raise _unavailable(exc, "signing a download URL", self.description) from exc

    # -- small records beside the blobs (the log witness): never blobs, never listed as such
    def put_record(self, relative: str, data: bytes) -> None:
        """Write a small object at ``<prefix><relative>``. Raises StorageUnavailableError."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(relative), Body=data)
        except _BOTO_ERRORS as exc:
            raise _unavailable(exc, f"writing {relative}", self.description) from exc

    def get_record(self, relative: str) -> bytes:
        """Raises StoredBlobMissingError, StorageUnavailableError."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(relative))
            data: bytes = body["Body"].read()
        except _BOTO_ERRORS as exc:
            if _is_not_found(exc):
                raise StoredBlobMissingError(f"no record {relative}") from exc
            raise _unavailable(exc, f"reading {relative}", self.description) from exc
        return data

    def list_records(self, relative_prefix: str) -> list[str]:
        """The records under ``relative_prefix``, relative names, sorted."""
        names: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.key(relative_prefix)
            )
            for page in pages:
                names += [o["Key"][len(self.prefix) :] for o in page.get("Contents", [])]
        except _BOTO_ERRORS as exc:
            raise _unavailable(exc, f"listing {relative_prefix}", self.description) from exc
        return sorted(names)

    def delete_record(self, relative: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(relative))
        except _BOTO_ERRORS as exc:
            raise _unavailable(exc, f"deleting {relative}", self.description) from exc

    def key(self, relative: str) -> str:
        return self.prefix + relative

    def open_writer(self) -> _S3Writer:
        # the creation time leads the name (for people reading a listing, and to date a
        # multipart upload that has no part yet: see purge_staging)
        millis = time.time_ns() // 1_000_000 if self._now is None else int(self._now() * 1000)
        name = f"{millis:013d}-{secrets.token_hex(8)}"
        return _S3Writer(self, self.key(f"_staging/{name}"), for_blob=True)

    def _part_key(self, upload_id: str, part_name: str) -> str:
        return self.key(upload_prefix(safe_name(upload_id)) + safe_name(part_name))

    def open_part_writer(self, upload_id: str, part_name: str) -> _S3Writer:
        return _S3Writer(self, self._part_key(upload_id, part_name), for_blob=False)

    def read_part(self, upload_id: str, part_name: str) -> Iterator[bytes]:
        return self._read_key(self._part_key(upload_id, part_name), 0, None)

    def delete_part(self, upload_id: str, part_name: str) -> None:
        self._delete_key(self._part_key(upload_id, part_name))

    def promote_part(self, upload_id: str, part_name: str, blake3_hex: str) -> None:
        # the part stays until its upload is removed: one request fewer here
        source = self._part_key(upload_id, part_name)
        final = self.key(blob_key(safe_name(blake3_hex)))
        try:
            self.client.copy(
                CopySource={"Bucket": self.bucket, "Key": source},
                Bucket=self.bucket,
                Key=final,
                Config=_COPY_CONFIG,
            )
        except _BOTO_ERRORS as exc:
            if _is_not_found(exc):
                raise StoredBlobMissingError(
                    f"part {part_name} of upload {upload_id} is missing from {self.description}"
                ) from exc
            raise _unavailable(exc, "publishing an upload part", self.description) from exc

    def delete_upload(self, upload_id: str) -> None:
        prefix = self.key(upload_prefix(safe_name(upload_id)))
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", [])
                ]
                if not keys:
                    continue
                result = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                for error in result.get("Errors", []):
                    raise StorageUnavailableError(
                        f"deleting {error.get('Key')} on {self.description} failed: "
                        f"{error.get('Code')}; check the credentials may delete"
                    )
            uploads = self.client.get_paginator("list_multipart_uploads")
            for listing in uploads.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in listing.get("Uploads", []):
                    self._abort_multipart(upload["Key"], upload["UploadId"])
        except _BOTO_ERRORS as exc:
            raise _unavailable(exc, f"deleting upload {upload_id}", self.description) from exc

    def _abort_multipart(self, key: str, upload_id: str) -> None:
        """Raises botocore errors but NoSuchUpload (another sweep got there first)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) not in ("NoSuchUpload", *_NOT_FOUND_CODES):
                raise

    def purge_staging(self, idle_seconds: float, *, lifetime_seconds: float) -> int:
        removed = 0
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.key("_staging/")):
                # finished staging objects: LastModified may be when their upload began
                cutoff = self._time_of(page) - max(idle_seconds, lifetime_seconds)
                for item in page.get("Contents", []):
                    if item["LastModified"].timestamp() < cutoff:
                        self._delete_key(item["Key"])
                        removed += 1
            for area in ("_staging/", "_uploads/"):
                uploads = self.client.get_paginator("list_multipart_uploads")
                for listing in uploads.paginate(Bucket=self.bucket, Prefix=self.key(area)):
                    cutoff = self._time_of(listing) - idle_seconds
                    for upload in listing.get("Uploads", []):
                        key, upload_id = upload["Key"], upload["UploadId"]
                        # a blob writer's key names when it began: some stores (moto)
                        # misdate Initiated, which alone dates an upload with no part yet
                        started = max(upload["Initiated"].timestamp(), _named_start(key))
                        if started >= cutoff:
                            continue
                        last = self._last_part(key, upload_id)
                        if last is not None and last >= cutoff:
                            continue
                        self._abort_multipart(key, upload_id)
                        removed += 1
        except _BOTO_ERRORS as exc:
            raise _unavailable(exc, "purging abandoned staged writes", self.description) from exc
        return removed

    def _time_of(self, answer: Mapping[str, Any]) -> float:
        """Now, to judge staged writes idle: this store's clock, else S3's when it sent
        ``answer``."""
        return _server_time(answer) if self._now is None else self._now()

    def _last_part(self, key: str, upload_id: str) -> float | None:
        """When a multipart upload last received a part (S3's clock); None: no part yet;
        infinity: it completed or was aborted meanwhile (never purge it). Raises botocore
        errors."""
        last: float | None = None
        pages = self.client.get_paginator("list_parts")
        try:
            for page in pages.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                for part in page.get("Parts", []):
                    stamp = part["LastModified"].timestamp()
                    last = stamp if last is None else max(last, stamp)
        except ClientError as exc:
            if _code(exc) in ("NoSuchUpload", *_NOT_FOUND_CODES):
                return float("inf")  # completed or aborted meanwhile: nothing to purge
            raise
        return last

    def list_upload_ids(self) -> list[str]:
        root = self.key("_uploads/")
        ids: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=root, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    ids.append(common["Prefix"][len(root) :].rstrip("/"))
        except _BOTO_ERRORS as exc:
            raise _unavailable(exc, "listing uploads", self.description) from exc
        return sorted(ids)

    def _head(self, blake3_hex: str, what: str) -> Any | None:
        """The blob's HEAD answer, or None when it is absent. Raises StorageUnavailableError."""
        key = self.key(blob_key(safe_name(blake3_hex)))
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except _BOTO_ERRORS as exc:
            if _is_not_found(exc):
                return None
            raise _unavailable(exc, f"reading {what} of {blake3_hex}", self.description) from exc

    def size_of(self, blake3_hex: str) -> int | None:
        head = self._head(blake3_hex, "the size")
        return None if head is None else int(head["ContentLength"])

    def read(self, blake3_hex: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        return self._read_key(self.key(blob_key(safe_name(blake3_hex))), offset, length)

    def _read_key(self, key: str, offset: int, length: int | None) -> Iterator[bytes]:
        """Fetch eagerly (so a missing key raises here), then stream the body."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"invalid range offset={offset} length={length}")
        name = key.rsplit("/", 1)[-1]
        try:
            if length == 0:
                self.client.head_object(Bucket=self.bucket, Key=key)
                return iter(())
            if offset == 0 and length is None:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            else:
                end = "" if length is None else str(offset + length - 1)
                response = self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{end}"
                )
        except _BOTO_ERRORS as exc:
            if _is_not_found(exc):
                raise StoredBlobMissingError(f"{name} is missing from {self.description}") from exc
            if _code(exc) != "InvalidRange":
                raise _unavailable(exc, f"reading {name}", self.description) from exc
            if length is not None:
                raise StoredBlobMissingError(f"{name} is shorter than the range asked") from exc
            return iter(())  # offset at or past the end: nothing to read
        return self._stream(response["Body"], name, length)

    def _stream(self, body: StreamingBody, name: str, length: int | None) -> Iterator[bytes]:
        received = 0
        try:
            for chunk in body.iter_chunks(READ_CHUNK_BYTES):
                received += len(chunk)
                yield chunk
        except (*_BOTO_ERRORS, OSError) as exc:
            raise _unavailable(exc, f"reading {name}", self.description) from exc
        finally:
            body.close()
        if length is not None and received < length:
            raise StoredBlobMissingError(f"{name} is shorter than the range asked")

    def _delete_key(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except _BOTO_ERRORS as exc:
            if not _is_not_found(exc):
                raise _unavailable(exc, "deleting an object", self.description) from exc

    def modified_at(self, blake3_hex: str) -> float | None:
        head = self._head(blake3_hex, "the age")
        return None if head is None else float(head["LastModified"].timestamp())

    def delete(self, blake3_hex: str) -> None:
        self._delete_key(self.key(blob_key(safe_name(blake3_hex))))

    def list_blobs(self) -> Iterator[str]:
        """Raises StorageUnavailableError while iterating."""
        try:
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.key("blobs/blake3/")):
                for item in page.get("Contents", []):
                    name = item["Key"].rsplit("/", 1)[-1]
                    if is_hex64(name):  # not an object someone put there by hand
                        yield name
        except _BOTO_ERRORS as exc:
            raise _unavailable(exc, "listing blobs", self.description) from exc

    def check(self) -> None:
        probe = self.key(f"_staging/readyz-{secrets.token_hex(4)}")
        try:
            self.client.head_bucket(Bucket=self.bucket)
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"ok")
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except _BOTO_ERRORS as exc:
            if _is_not_found(exc):  # HEAD on a missing bucket has no error code but 404
                raise StorageUnavailableError(
                    f"{self.description}: bucket {self.bucket!r} does not exist; create it"
                ) from exc
            raise _unavailable(exc, "checking the bucket", self.description) from exc
