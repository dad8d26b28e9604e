"""Receiving blob bytes: bounded body streaming and the receive/hash/write pipeline.

Invariants:
- A body is refused (``BodyTooLargeError``) as soon as it passes its limit, and a
  body shorter than its ``Content-Length`` or cut by a disconnect is refused
  (``IncompleteBodyError``): nothing is published in either case.
- The pipeline overlaps a hashing lane and a writing lane (one thread each,
  batches in order) with the event loop receiving the next batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from registry.core.digest import BlobDigests, DualHasher
from registry.core.quantity import format_size
from registry.errors import BodyTooLargeError, IncompleteBodyError
from registry.storage import BlobWriter

BATCH_BYTES = 4 * 1024 * 1024
WINDOW = 4  # batches in flight per upload

Receive = Callable[[], Awaitable[Any]]


async def body_chunks(
    receive: Receive, declared_length: int | None, max_bytes: int, what: str = "body"
) -> AsyncIterator[bytes]:
    """Yield an ASGI request body, enforcing ``max_bytes`` and ``declared_length``.

    Raises:
        BodyTooLargeError: the body is (or announces to be) longer than ``max_bytes``.
        IncompleteBodyError: it ended before ``declared_length`` or the client left.
    """
    if declared_length is not None and declared_length > max_bytes:
        raise BodyTooLargeError(
            f"{what} of {format_size(declared_length)} exceeds the limit of "
            f"{format_size(max_bytes)}; use a resumable upload or ask an admin to raise it",
            limit_bytes=max_bytes,
        )
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise IncompleteBodyError(
                f"client disconnected after {received} bytes of the {what}; nothing was stored"
            )
        chunk: bytes = message.get("body", b"")
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


async def batched(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Regroup small ASGI chunks into batches of about BATCH_BYTES (fewer thread hops)."""
    pending: list[bytes] = []
    size = 0
    async for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= BATCH_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


async def hash_and_write(chunks: AsyncIterator[bytes], writer: BlobWriter | None) -> BlobDigests:
    """Hash (both digests) and write a stream, pipelined across two lanes.

    One thread hashes, another writes, each taking batches in order, while the
    event loop receives the next ones; at most WINDOW batches are in flight, so
    memory stays bounded and a slow disk slows the sender (backpressure).
    ``writer=None`` hashes only. The caller commits or aborts the writer.
    """
    loop = asyncio.get_running_loop()
    hasher = DualHasher()
    hash_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reliquary-hash")
    write_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reliquary-write")
    in_flight: deque[list[asyncio.Future[None]]] = deque()
    try:
        async for batch in batched(chunks):
            while len(in_flight) >= WINDOW:
                await asyncio.gather(*in_flight.popleft())
            lanes = [loop.run_in_executor(hash_lane, hasher.update, batch)]
            if writer is not None:
                lanes.append(loop.run_in_executor(write_lane, writer.write, batch))
            in_flight.append(lanes)
        while in_flight:
            await asyncio.gather(*in_flight.popleft())
    except BaseException:
        # let queued work drain before the caller aborts the writer
        await asyncio.gather(*(f for lanes in in_flight for f in lanes), return_exceptions=True)
        raise
    finally:
        hash_lane.shutdown(wait=False)
        write_lane.shutdown(wait=False)
    return hasher.finish()
