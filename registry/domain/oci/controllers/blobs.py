"""``/v2/{name}/blobs/{digest}``: blob HEAD and GET (ranges, redirects), refused DELETE."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Response

from registry.core.oci import parse_sha256
from registry.domain.blobs.controllers import blob_answer, blob_head
from registry.domain.blobs.schemas import BlobInfo
from registry.domain.oci.controllers.call import OciCall, OciHandler
from registry.errors import UnsupportedOperationError


async def _held_blob(call: OciCall) -> BlobInfo:
    digest = parse_sha256(call.params["digest"])
    info = call.oci.cached_blob(call.name, digest)
    if info is None:
        info = await anyio.to_thread.run_sync(call.oci.blob, call.name, digest)
    return info


async def head_blob(call: OciCall) -> Response[Any]:
    return blob_head(await _held_blob(call))


async def get_blob(call: OciCall) -> Response[Any]:
    info = await _held_blob(call)
    return await blob_answer(call.request, call.oci.blobs, info, call.metrics)


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
