"""Filesystem-only behaviour: ranges served from the page cache without a thread hop."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from blake3 import blake3

from registry.storage.base import CachedReads
from registry.storage.filesystem import FilesystemBlobStore

MiB = 1024 * 1024


def test_cached_reads_and_blocking_reads_interleave_to_the_exact_bytes(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    data = random.Random(9).randbytes(3 * MiB + 5)
    writer = store.open_writer()
    writer.write(data)
    hex_digest = blake3(data).hexdigest()
    writer.commit(hex_digest)
    reader = store.read(hex_digest, 10, len(data) - 20)
    assert isinstance(reader, CachedReads)
    got, cached = [], 0
    for turn in range(10):
        try:
            chunk = reader.read_cached() if turn % 2 == 0 else next(reader)
        except StopIteration:
            break
        if chunk is None:
            chunk = next(reader)
        else:
            cached += 1
        got.append(chunk)
    assert b"".join(got) == data[10:-10]
    assert cached >= 1  # just written: the page cache has it
    with pytest.raises(StopIteration):
        reader.read_cached()
    with pytest.raises(StopIteration):
        next(reader)
