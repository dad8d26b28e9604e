"""Reading request bodies ourselves, for the routes that take raw bytes (blobs, upload
chunks, manifests, envelopes) rather than a parsed ``JSONBody``.

Invariants:
- A body is refused (``BodyTooLargeError``) as soon as it passes its limit, before
  its first byte when its ``Content-Length`` already does, and a body shorter than
  its ``Content-Length`` or cut by a disconnect is refused (``IncompleteBodyError``):
  the caller stores nothing in either case.
- ``what`` names the body in every error detail ("blob", "manifest", "envelope").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request

from registry.core.quantity import format_size
from registry.errors import BodyTooLargeError, IncompleteBodyError


async def body_chunks(
    request: Request[Any, Any, Any], max_bytes: int, what: str = "body"
) -> AsyncIterator[bytes]:
    """Yield the request's body as it arrives, for routes that stream it onwards.

    Raises:
        BodyTooLargeError: the body is (or announces to be) longer than ``max_bytes``.
        IncompleteBodyError: it ended before its ``Content-Length`` or the client left.
    """
    declared_length = request.content_length
    if declared_length is not None and declared_length > max_bytes:
        raise BodyTooLargeError(
            f"{what} of {format_size(declared_length)} exceeds the limit of "
            f"{format_size(max_bytes)}; use a resumable upload or ask an admin to raise it",
            limit_bytes=max_bytes,
        )
    received = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":  # http.disconnect: the only other in HTTP
            raise IncompleteBodyError(
                f"client disconnected after {received} bytes of the {what}; nothing was stored"
            )
        chunk = message.get("body", b"")
        if chunk:
            received += len(chunk)
            if received > max_bytes:
                raise BodyTooLargeError(
                    f"{what} exceeds the limit of {format_size(max_bytes)}",
                    limit_bytes=max_bytes,
                )
            yield chunk
        if not message.get("more_body", False):
            break
    if declared_length is not None and received != declared_length:
        raise IncompleteBodyError(
            f"{what} ended after {received} of {declared_length} declared bytes; nothing was stored"
        )


async def read_body(request: Request[Any, Any, Any], limit: int, what: str) -> bytes:
    """The whole body, for routes that parse it in one piece (manifests, envelopes).

    Raises:
        BodyTooLargeError, IncompleteBodyError: as ``body_chunks``.
    """
    return b"".join([chunk async for chunk in body_chunks(request, limit, what)])
