"""``/v2/{name}/blobs/{digest}``: blob HEAD and GET (ranges, redirects), refused DELETE."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Response
from litestar.response import Stream

from registry.core.oci import parse_sha256
from registry.domain.blobs.controllers import stream_chunks
from registry.domain.blobs.ranges import parse_range
from registry.domain.blobs.schemas import BlobInfo
from registry.domain.oci.controllers.call import EMPTY, OciCall, OciHandler
from registry.errors import UnsupportedOperationError
from registry.http import HeadResponse


async def _held_blob(call: OciCall) -> BlobInfo:
    digest = parse_sha256(call.params["digest"])
    info = call.oci.cached_blob(call.name, digest)
    if info is None:
        info = await anyio.to_thread.run_sync(call.oci.blob, call.name, digest)
    return info


async def head_blob(call: OciCall) -> Response[Any]:
    info = await _held_blob(call)
    headers = info.headers() | {"content-length": str(info.digests.size_bytes)}
    return HeadResponse(None, headers=headers, media_type="application/octet-stream")


async def get_blob(call: OciCall) -> Response[Any]:
    info = await _held_blob(call)
    headers = info.headers()
    blobs = call.oci.blobs
    if blobs.redirects:  # the object store serves the bytes; the client verifies the digest
        elsewhere = await anyio.to_thread.run_sync(blobs.redirect_url, info)
        headers |= {"location": elsewhere, "cache-control": "no-store"}
        return Response(content=b"", status_code=307, headers=headers, media_type=EMPTY)
    size = info.digests.size_bytes
    status, start, length = 200, 0, size
    range_header = call.request.headers.get("range")
    if range_header is not None:
        byte_range = parse_range(range_header, size)
        status, start, length = 206, byte_range.start, byte_range.length
        headers["content-range"] = byte_range.content_range(size)
    headers["content-length"] = str(length)
    chunks = await anyio.to_thread.run_sync(blobs.read, info, start, length)
    return Stream(
        stream_chunks(chunks, call.metrics),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


async def refuse_delete(call: OciCall) -> Response[Any]:
    raise UnsupportedOperationError(
        "nothing is ever deleted from this registry: blobs, manifests and tags are "
        "immutable. To take an image out of use, a governor revokes its artifact NAME@TAG "
        "(POST /v1/artifacts/<digest>/revoke): it can then never be promoted again"
    )


BLOB_HANDLERS: dict[str, OciHandler] = {
    "head_blob": head_blob,
    "get_blob": get_blob,
    "delete_blob": refuse_delete,
    "delete_manifest": refuse_delete,
}
