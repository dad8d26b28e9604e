"""Receiving blob bytes: the receive/hash/write pipeline behind every blob write
(the request body itself is read by ``registry.bodies``).

Invariants:
- The pipeline overlaps a hashing lane and a writing lane (one thread each,
  batches in order) with the event loop receiving the next batch.
- An error from the incoming chunks (a body ``registry.bodies`` refused) propagates
  once the queued work has drained; the caller then aborts its writer, so nothing
  is published.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from registry.core.digest import BlobDigests, DualHasher
from registry.storage import BlobWriter

BATCH_BYTES = 4 * 1024 * 1024
WINDOW = 4  # batches in flight per upload


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
