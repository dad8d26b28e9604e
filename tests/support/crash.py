"""A process killed (SIGKILL) in the middle of writing to a blob store, as a crash leaves it."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from collections.abc import Callable

from registry.storage.base import BlobStore

MiB = 1024 * 1024


def _write_then_die(
    open_store: Callable[[], BlobStore], upload_id: str | None, size_bytes: int
) -> None:
    store = open_store()
    if upload_id is None:
        writer = store.open_writer()
    else:
        writer = store.open_part_writer(upload_id, "00000000000000000000-crash")
    writer.write(random.Random(11).randbytes(size_bytes))
    os.kill(os.getpid(), signal.SIGKILL)  # no abort, no cleanup: a crash


def die_mid_write(
    open_store: Callable[[], BlobStore],
    *,
    upload_id: str | None = None,
    size_bytes: int = 6 * MiB,
) -> None:
    """In another process: open ``open_store()``, start a blob write (or a part of
    ``upload_id``), send it ``size_bytes`` (the default is more than one part of the
    tests' S3 stores), and be killed before committing or aborting.

    Raises AssertionError unless the process died of SIGKILL."""
    process = multiprocessing.get_context("spawn").Process(
        target=_write_then_die, args=(open_store, upload_id, size_bytes)
    )
    process.start()
    process.join(timeout=120)
    assert process.exitcode == -signal.SIGKILL, process.exitcode
