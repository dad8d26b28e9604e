"""Blob endpoints: HEAD/GET/PUT ``/v1/blobs/{digest}`` and resumable ``/v1/uploads``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, head, patch, post, put
from litestar.params import FromPath, FromQuery, PathParameter
from litestar.response import Stream

from registry.bodies import body_chunks
from registry.core.digest import Digest
from registry.core.numbers import parse_decimal
from registry.core.roles import Role
from registry.deps import MetricsDep, SettingsDep
from registry.domain.auth.guards import principal_of, publishers, readers
from registry.domain.blobs.deps import BlobServiceDep, UploadServiceDep
from registry.domain.blobs.ranges import parse_range
from registry.domain.blobs.schemas import Blob, BlobInfo, UploadSession
from registry.domain.blobs.services import BlobService
from registry.errors import InvalidRequestError
from registry.http import HeadResponse
from registry.metrics import Metrics
from registry.storage.base import CachedReads

AnyRequest = Request[Any, Any, Any]
OCTETS = "application/octet-stream"


def _not_modified(request: AnyRequest, info: BlobInfo) -> bool:
    tags = request.headers.get("if-none-match")
    return tags is not None and (tags.strip() == "*" or info.etag in tags.split(", "))


async def stream_chunks(chunks: Iterator[bytes], metrics: Metrics) -> AsyncIterator[bytes]:
    """Send a blob; chunks the page cache holds are read right here, the rest in a thread."""
    cached = chunks if isinstance(chunks, CachedReads) else None
    while True:
        chunk = None
        if cached is not None:
            try:
                chunk = cached.read_cached()
            except StopIteration:
                return
        if chunk is None:
            chunk = await anyio.to_thread.run_sync(next, chunks, None)
            if chunk is None:
                return
        metrics.bytes_out.inc(len(chunk))
        yield chunk


def blob_head(info: BlobInfo) -> Response[None]:
    """A blob HEAD's answer (``/v1`` and ``/v2`` alike): the GET's headers, no body."""
    headers = info.headers() | {"content-length": str(info.digests.size_bytes)}
    return HeadResponse(None, headers=headers, media_type=OCTETS)


async def blob_answer(
    request: AnyRequest, blob_service: BlobService, info: BlobInfo, metrics: Metrics
) -> Response[Any]:
    """A blob GET's answer (``/v1`` and ``/v2`` alike): a 307 to the object store when
    redirects are on (the client verifies the bytes), else the bytes, whole (200) or the
    one range the ``Range`` header asks for (206; 416 when it cannot be served); 304 to
    a conditional GET that names its ETag (a blob never changes)."""
    headers = info.headers()
    if _not_modified(request, info):
        return Response(content=None, status_code=304, headers=headers)
    if blob_service.redirects:
        elsewhere = await anyio.to_thread.run_sync(blob_service.redirect_url, info)
        headers |= {"location": elsewhere, "cache-control": "no-store"}
        return Response(content=b"", status_code=307, headers=headers, media_type=OCTETS)
    size = info.digests.size_bytes
    status, start, length = 200, 0, size
    range_header = request.headers.get("range")
    if range_header is not None:
        byte_range = parse_range(range_header, size)
        status, start, length = 206, byte_range.start, byte_range.length
        headers["content-range"] = byte_range.content_range(size)
    headers["content-length"] = str(length)
    chunks = await anyio.to_thread.run_sync(blob_service.read, info, start, length)
    return Stream(
        stream_chunks(chunks, metrics), status_code=status, headers=headers, media_type=OCTETS
    )


async def _blob(blob_service: BlobService, digest: Digest) -> BlobInfo:
    """The blob, from this process's cache when it can (no thread hop), else the database."""
    info = blob_service.cached(digest)
    if info is None:
        info = await anyio.to_thread.run_sync(blob_service.get, digest)
    return info


def _stored(info: BlobInfo, created: bool) -> Response[Blob]:
    """201 for a new blob, 200 for one already stored, pointing at it either way."""
    return Response(
        Blob.of(info),
        status_code=201 if created else 200,
        headers={"location": f"/v1/blobs/{info.digests.blake3}", "etag": info.etag},
    )


def _caller(request: AnyRequest) -> str | None:
    principal = principal_of(request)
    return None if principal.role is Role.ADMIN else principal.token_id


class BlobController(Controller):
    path = "/v1/blobs"

    @head("/{digest:str}", guards=[readers])
    async def head_blob(
        self, digest: FromPath[str], blob_service: BlobServiceDep
    ) -> Response[None]:
        return blob_head(await _blob(blob_service, Digest.parse(digest)))

    @get("/{digest:str}", guards=[readers])
    async def get_blob(
        self,
        request: AnyRequest,
        digest: FromPath[str],
        blob_service: BlobServiceDep,
        metrics: MetricsDep,
    ) -> Response[Any]:
        info = await _blob(blob_service, Digest.parse(digest))
        return await blob_answer(request, blob_service, info, metrics)

    @put("/{digest:str}", guards=[publishers], request_max_body_size=None)
    async def put_blob(
        self,
        request: AnyRequest,
        digest: FromPath[str],
        blob_service: BlobServiceDep,
        settings: SettingsDep,
    ) -> Response[Blob]:
        claimed = Digest.parse(digest)
        chunks = body_chunks(request, settings.limits.max_blob_bytes, "blob")
        info, created = await blob_service.ingest(claimed, chunks)
        return _stored(info, created)


def _upload_headers(upload: UploadSession) -> dict[str, str]:
    return {
        "location": f"/v1/uploads/{upload.id}",
        "upload-offset": str(upload.offset_bytes),
        "upload-expires": upload.expires_at.isoformat(),
        "cache-control": "no-store",
    }


class UploadController(Controller):
    path = "/v1/uploads"
    guards = [publishers]

    @post("", status_code=201)
    async def create(
        self, request: AnyRequest, upload_service: UploadServiceDep
    ) -> Response[dict[str, Any]]:
        upload = await anyio.to_thread.run_sync(
            upload_service.create, principal_of(request).token_id
        )
        body = {"id": upload.id, "upload_offset": 0, "expires_at": upload.expires_at.isoformat()}
        return Response(body, status_code=201, headers=_upload_headers(upload))

    @head("/{upload_id:str}")
    async def status(
        self,
        request: AnyRequest,
        upload_id: Annotated[str, PathParameter(max_length=64)],
        upload_service: UploadServiceDep,
    ) -> Response[None]:
        upload = await anyio.to_thread.run_sync(upload_service.status, upload_id, _caller(request))
        return HeadResponse(None, headers=_upload_headers(upload))

    @patch("/{upload_id:str}", status_code=204, request_max_body_size=None)
    async def append(
        self,
        request: AnyRequest,
        upload_id: Annotated[str, PathParameter(max_length=64)],
        upload_service: UploadServiceDep,
        settings: SettingsDep,
    ) -> Response[None]:
        offset_header = request.headers.get("upload-offset")
        if offset_header is None:
            raise InvalidRequestError(
                "PATCH needs an Upload-Offset header with the byte offset this chunk starts at"
            )
        offset = parse_decimal(
            offset_header, "Upload-Offset", maximum=settings.limits.max_blob_bytes
        )
        chunks = body_chunks(request, settings.limits.max_chunk_bytes, "chunk")
        upload = await upload_service.append(upload_id, _caller(request), offset, chunks)
        return Response(content=None, status_code=204, headers=_upload_headers(upload))

    @put("/{upload_id:str}", request_max_body_size=1024)
    async def commit(
        self,
        request: AnyRequest,
        upload_id: Annotated[str, PathParameter(max_length=64)],
        upload_service: UploadServiceDep,
        digest: FromQuery[str] = "",
    ) -> Response[Blob]:
        if not digest:
            raise InvalidRequestError("commit needs ?digest=blake3:<hex> (or sha256:<hex>)")
        claimed = Digest.parse(digest)
        body = await request.body()
        if body:
            raise InvalidRequestError("commit takes no body: send every chunk with PATCH first")
        info, created = await upload_service.commit(upload_id, _caller(request), claimed)
        return _stored(info, created)

    @delete("/{upload_id:str}", status_code=204)
    async def abort(
        self,
        request: AnyRequest,
        upload_id: Annotated[str, PathParameter(max_length=64)],
        upload_service: UploadServiceDep,
    ) -> None:
        await anyio.to_thread.run_sync(upload_service.abort, upload_id, _caller(request))
