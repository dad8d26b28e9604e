"""Two requests recording the same blob at once (two clients pushing one base layer, or a
push racing the reconciler that records its bytes as an orphan): one writes the row, the
other finds it there, neither fails."""

from __future__ import annotations

import hashlib
import secrets
import threading
from datetime import UTC, datetime

from registry.db.engine import make_session_factory
from registry.db.models import BlobRow
from registry.domain.blobs.repositories import BlobRepository
from tests.conftest import Deployment

ROUNDS, WRITERS = 100, 4


def test_concurrent_inserts_of_one_blob_row_never_fail(deployment: Deployment) -> None:
    writes = make_session_factory(deployment.engine)
    failures: list[BaseException] = []
    inserted: list[bool] = []
    for _ in range(ROUNDS):
        data = secrets.token_bytes(16)
        row = {
            "blake3": hashlib.blake2b(data, digest_size=32).hexdigest(),  # any 64 hex
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_bytes": len(data),
        }
        start = threading.Barrier(WRITERS)

        def record(row: dict[str, object] = row, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                with writes.begin() as session:
                    blob = BlobRow(**row, created_at=datetime.now(UTC))
                    inserted.append(BlobRepository(session).insert_if_absent(blob))
            except BaseException as exc:  # every failure is the finding
                failures.append(exc)

        threads = [threading.Thread(target=record) for _ in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert inserted.count(True) == ROUNDS  # one writer per blob wrote its row
