"""``/v2/{name}/blobs/uploads/``: blob uploads (distribution-spec v1.1, "Pushing blobs").

- ``POST``: a session (202); with ``?digest=`` and a body, the whole blob in one request
  (201); with ``?mount=<digest>&from=<repository>``, the blob mounted from a repository
  that holds it (201), else a session (202), never a 404.
- ``PATCH <location>``: the next chunk, streamed (no ``Content-Range``: at the session's
  offset) or chunked (``Content-Range: <start>-<end>``, inclusive, no ``bytes``); a chunk
  that does not start at the session's offset is a 416 with the session's ``Range``.
- ``PUT <location>?digest=``: finish, with an optional last chunk (or the whole blob).
- ``GET <location>``: how much the session holds; ``DELETE``: abandon it.

Invariants:
- Sessions are ``UploadService`` sessions bound to the repository and the token that
  opened them; nothing is visible before its digest is proven (``BlobService``), and a
  refused chunk or commit changes nothing.
- Every blob stored or mounted here is recorded as held by the repository
  (``OciService.add_blob``), so ``GET /v2/<name>/blobs/<digest>`` then answers 200.
- Only ``sha256`` digests name OCI blobs: any other algorithm is ``DIGEST_INVALID``.
- A PATCH or final PUT may carry up to the blob limit, not the ``/v1`` chunk limit:
  skopeo sends a whole layer as one PATCH, oras-py a whole blob as the PUT.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from litestar import Response

from registry.bodies import body_chunks
from registry.core.digest import Digest
from registry.core.errors import InvalidDigestError
from registry.core.images import image_name_problem
from registry.core.oci import parse_sha256
from registry.core.roles import READ_ROLES, Role
from registry.domain.auth.schemas import Principal
from registry.domain.blobs.schemas import BlobInfo, UploadSession
from registry.domain.oci.controllers.call import EMPTY, OciCall, OciHandler
from registry.errors import InvalidRepositoryNameError, InvalidUploadError

_CONTENT_RANGE = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")


def _caller(principal: Principal) -> str | None:
    """The token a session belongs to (None: admins may use every session)."""
    return None if principal.role is Role.ADMIN else principal.token_id


def may_pull_from(principal: Principal, source: str) -> bool:
    """Whether ``principal`` may read repository ``source``, which a mount from it needs
    (a mount answers whether ``source`` holds the blob, and copies it).

    Every role may pull every repository; a scoped ``/v2`` token must also have been
    granted ``repository:<source>:pull`` (clients ask for it beside the push scope).
    """
    if principal.role not in READ_ROLES:
        return False
    return principal.grant is None or principal.grant.allows("pull", source)


def _range(offset_bytes: int) -> str:
    """The ``Range`` of a session holding ``offset_bytes`` bytes: ``0-<last byte>``, and
    ``0-0`` for an empty one (as CNCF Distribution answers; clients expect it)."""
    return f"0-{max(offset_bytes - 1, 0)}"


def _session_answer(status: int, name: str, upload: UploadSession) -> Response[Any]:
    headers = {
        "location": f"/v2/{name}/blobs/uploads/{upload.id}",
        "range": _range(upload.offset_bytes),
        "docker-upload-uuid": upload.id,
        "cache-control": "no-store",
    }
    return Response(content=b"", status_code=status, headers=headers, media_type=EMPTY)


async def _held(call: OciCall, info: BlobInfo) -> Response[Any]:
    """Record that the repository holds ``info``; the 201 naming it."""
    await anyio.to_thread.run_sync(call.oci.add_blob, call.name, info)
    digest = str(info.digests.sha256)
    headers = {
        "location": f"/v2/{call.name}/blobs/{digest}",
        "docker-content-digest": digest,
        "cache-control": "no-store",
    }
    return Response(content=b"", status_code=201, headers=headers, media_type=EMPTY)


def _blob_body(call: OciCall) -> AsyncIterator[bytes]:
    return body_chunks(call.request, call.settings.limits.max_blob_bytes, "blob")


async def _mount(call: OciCall, digest: Digest, source: str) -> BlobInfo | None:
    """The blob, if ``source`` holds it and the caller may read ``source``."""
    if not may_pull_from(call.principal, source):
        return None
    return await anyio.to_thread.run_sync(call.oci.find_blob, source, digest)


async def start_upload(call: OciCall) -> Response[Any]:
    query = call.request.query_params
    mount = query.get("mount")
    if mount is not None:
        digest = parse_sha256(mount)
        source = query.get("from")
        if source is not None and (problem := image_name_problem(source)) is not None:
            raise InvalidRepositoryNameError(f"from: {problem}", name=source)
        info = None if source is None else await _mount(call, digest, source)
        if info is not None:
            return await _held(call, info)
        # not mountable: a fresh session, where the client uploads the blob (spec: 202)
    elif "digest" in query:
        claimed = parse_sha256(query["digest"])
        info, _ = await call.oci.blobs.ingest(claimed, _blob_body(call))
        return await _held(call, info)
    upload = await anyio.to_thread.run_sync(call.uploads.create, call.principal.token_id, call.name)
    return _session_answer(202, call.name, upload)


async def upload_status(call: OciCall) -> Response[Any]:
    upload = await anyio.to_thread.run_sync(
        call.uploads.status, call.params["upload_id"], _caller(call.principal), call.name
    )
    return _session_answer(204, call.name, upload)


def _chunk_start(call: OciCall) -> tuple[int | None, int | None]:
    """(where the chunk starts, its length) from ``Content-Range``; (None, None)
    without one (a streamed chunk, appended wherever the session is).

    Raises:
        InvalidUploadError: a malformed range, or one that disagrees with
            ``Content-Length``.
    """
    header = call.request.headers.get("content-range")
    if header is None:
        return None, None
    m = _CONTENT_RANGE.fullmatch(header.strip())
    if m is None:
        raise InvalidUploadError(
            f"Content-Range {header[:80]!r} must be <first byte>-<last byte>, inclusive and "
            "without a unit (e.g. 0-1048575); or leave it out to append the body "
            "wherever the upload is",
            content_range=header[:80],
        )
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise InvalidUploadError(
            f"Content-Range {header!r} ends before it starts; the last byte is inclusive",
            content_range=header,
        )
    length = end - start + 1
    declared = call.request.content_length
    if declared is not None and declared != length:
        raise InvalidUploadError(
            f"Content-Range {header!r} names {length} bytes but Content-Length is "
            f"{declared}; send exactly the bytes of the range",
            content_range=header,
        )
    return start, length


async def _exactly(chunks: AsyncIterator[bytes], length: int | None) -> AsyncIterator[bytes]:
    """``chunks``, refused unless they are ``length`` bytes (any length when None)."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if length is not None and received > length:
            raise InvalidUploadError(
                f"the chunk is longer than the {length} bytes its Content-Range names; "
                "nothing of it was kept"
            )
        yield chunk
    if length is not None and received != length:
        raise InvalidUploadError(
            f"the chunk has {received} bytes but its Content-Range names {length}; "
            "nothing of it was kept"
        )


async def append_upload(call: OciCall) -> Response[Any]:
    start, length = _chunk_start(call)
    upload = await call.uploads.append(
        call.params["upload_id"],
        _caller(call.principal),
        start,
        _exactly(_blob_body(call), length),
        call.name,
    )
    return _session_answer(202, call.name, upload)


async def finish_upload(call: OciCall) -> Response[Any]:
    digest = call.request.query_params.get("digest")
    if not digest:
        raise InvalidDigestError(
            "finishing an upload needs ?digest=sha256:<hex>, the digest of the whole blob"
        )
    claimed = parse_sha256(digest)
    start, length = _chunk_start(call)
    final = None
    if length is not None or call.request.content_length != 0:
        final = _exactly(_blob_body(call), length)
    info, _ = await call.uploads.commit(
        call.params["upload_id"],
        _caller(call.principal),
        claimed,
        call.name,
        final=final,
        final_offset=start,
    )
    return await _held(call, info)


async def cancel_upload(call: OciCall) -> Response[Any]:
    await anyio.to_thread.run_sync(
        call.uploads.abort, call.params["upload_id"], _caller(call.principal), call.name
    )
    return Response(content=b"", status_code=204)


UPLOAD_HANDLERS: dict[str, OciHandler] = {
    "start_upload": start_upload,
    "upload_status": upload_status,
    "append_upload": append_upload,
    "finish_upload": finish_upload,
    "cancel_upload": cancel_upload,
}
