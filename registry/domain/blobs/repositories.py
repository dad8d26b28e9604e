"""Blob and upload-session rows."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.core.digest import Algorithm, Digest
from registry.db.models import BlobRow, UploadPartRow, UploadRow

_GUARD_CLASS = 0x626C6F62  # "blob": the advisory-lock namespace of digest guards


def _guard_key(blake3_hex: str) -> int:
    """32 bits of the digest as a signed int4 (two digests sharing a key only wait)."""
    return int.from_bytes(bytes.fromhex(blake3_hex[:8]), "big", signed=True)


class BlobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def guard(self, blake3_hex: str, *, exclusive: bool) -> bool:
        """Hold the digest's guard until the transaction ends; False if ``exclusive``
        and a request holds it now (the exclusive guard never waits; the shared one
        waits for it).

        Recording a row takes it shared, removing unrecorded bytes takes it
        exclusive, so neither can happen in the middle of the other, whichever
        replica runs them. PostgreSQL: a transaction-level advisory lock in the
        database every replica shares. SQLite: every write transaction is already
        exclusive (``BEGIN IMMEDIATE``, across processes), so there is nothing to take.
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return True
        key = _guard_key(blake3_hex)
        if exclusive:
            taken = func.pg_try_advisory_xact_lock(_GUARD_CLASS, key)
            return bool(self.session.scalar(select(taken)))
        self.session.execute(select(func.pg_advisory_xact_lock_shared(_GUARD_CLASS, key)))
        return True

    def get(self, digest: Digest) -> BlobRow | None:
        if digest.algorithm is Algorithm.BLAKE3:
            return self.session.get(BlobRow, digest.hex)
        return self.session.scalar(select(BlobRow).where(BlobRow.sha256 == digest.hex))

    def present(self, blake3_hexes: Iterable[str]) -> dict[str, BlobRow]:
        """The rows among ``blake3_hexes`` that exist, keyed by blake3 hex."""
        wanted = list(dict.fromkeys(blake3_hexes))
        found: dict[str, BlobRow] = {}
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            for row in self.session.scalars(select(BlobRow).where(BlobRow.blake3.in_(batch))):
                found[row.blake3] = row
        return found

    def insert_if_absent(self, row: BlobRow) -> bool:
        """Insert unless a row for this blake3 exists; True when this call inserted it.

        No conflict target: on PostgreSQL, ``ON CONFLICT (blake3)`` let two concurrent
        inserts of the same blob fail on the other unique index (``uq_blobs_sha256``)
        instead of one of them doing nothing."""
        values = {
            "blake3": row.blake3,
            "sha256": row.sha256,
            "size_bytes": row.size_bytes,
            "created_at": row.created_at,
        }
        dialect = self.session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(BlobRow).values(values)
        inserted = self.session.execute(
            stmt.on_conflict_do_nothing().returning(BlobRow.blake3)
        ).scalar_one_or_none()
        return inserted is not None

    def all_blake3(self) -> Iterable[BlobRow]:
        return self.session.scalars(select(BlobRow).execution_options(yield_per=1000))


class UploadRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, upload_id: str, now: datetime) -> UploadRow | None:
        row = self.session.get(UploadRow, upload_id)
        if row is None or row.expires_at <= now:
            return None
        return row

    def add(self, row: UploadRow) -> None:
        self.session.add(row)
        self.session.flush()

    def advance(
        self,
        upload_id: str,
        expected_offset: int,
        part: UploadPartRow,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        """Record a part if the upload is still at ``expected_offset``; False otherwise."""
        result = self.session.execute(
            update(UploadRow)
            .where(UploadRow.id == upload_id, UploadRow.offset_bytes == expected_offset)
            .values(
                offset_bytes=expected_offset + part.size_bytes,
                updated_at=now,
                expires_at=expires_at,
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        self.session.add(part)
        self.session.flush()
        return True

    def parts(self, upload_id: str) -> list[UploadPartRow]:
        return list(
            self.session.scalars(
                select(UploadPartRow)
                .where(UploadPartRow.upload_id == upload_id)
                .order_by(UploadPartRow.offset_bytes)
            )
        )

    def remove(self, upload_id: str) -> bool:
        self.session.execute(delete(UploadPartRow).where(UploadPartRow.upload_id == upload_id))
        result = self.session.execute(delete(UploadRow).where(UploadRow.id == upload_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def expired_ids(self, now: datetime, limit: int = 500) -> list[str]:
        return list(
            self.session.scalars(
                select(UploadRow.id).where(UploadRow.expires_at <= now).limit(limit)
            )
        )

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(ids)
        return set(self.session.scalars(select(UploadRow.id).where(UploadRow.id.in_(wanted))))
