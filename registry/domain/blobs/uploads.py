"""Resumable upload sessions: create, append chunks at offsets, commit, abort, expire.

Served by ``/v1/uploads`` and by the OCI blob uploads under ``/v2/<name>/blobs/uploads/``.

Invariants:
- Session state lives in the database and its parts in the blob store, never in
  process memory: any replica can serve any request of any session.
- A session belongs to the token that opened it (admins may use any) and to the OCI
  repository it was opened in (``name``; ``None`` for ``/v1``): used by another
  token or under another name, it does not exist.
- A chunk is accepted only at the session's current offset; the offset moves
  by a conditional update, so of two racing chunks exactly one wins and the
  loser's part is deleted. A refused chunk leaves the session as it was.
- Commit re-reads the parts in offset order (then the final chunk sent with the
  commit, if any), hashes them, and publishes the blob only when it matches the
  claimed digest; the session is then removed. A refused commit leaves the session
  as it was (its final chunk is not kept).
- A part at offset 0 is hashed while it streams in and its digests are kept with it:
  when it is the whole upload (skopeo's one PATCH), commit checks the claimed digest
  against them and publishes the part itself (``BlobService.publish_part``), reading
  nothing again. Hash state cannot move between replicas, so later parts are not
  hashed on arrival; an upload of several parts is re-read at commit.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from registry.core.digest import BlobDigests, Digest
from registry.core.quantity import format_size
from registry.db.models import UploadPartRow, UploadRow
from registry.domain.blobs.ingest import batched, hash_and_write
from registry.domain.blobs.repositories import UploadRepository
from registry.domain.blobs.schemas import BlobInfo, UploadSession
from registry.domain.blobs.services import BlobService
from registry.errors import BodyTooLargeError, UploadNotFoundError, UploadOffsetMismatchError
from registry.settings import LimitSettings
from registry.storage import BlobStore


def _start_hint(name: str | None) -> str:
    """How a client of the session's API opens a new session."""
    return "POST /v1/uploads" if name is None else f"POST /v2/{name}/blobs/uploads/"


async def _chain(*streams: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for stream in streams:
        async for chunk in stream:
            yield chunk


def _lone_digests(parts: list[UploadPartRow]) -> BlobDigests | None:
    """The digests of the whole upload when it is one part hashed as it was received."""
    if len(parts) != 1:
        return None
    part = parts[0]
    if part.offset_bytes != 0 or part.blake3 is None or part.sha256 is None:
        return None
    return BlobDigests(Digest.blake3(part.blake3), Digest.sha256(part.sha256), part.size_bytes)


class UploadService:
    def __init__(
        self,
        blobs: BlobService,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        limits: LimitSettings,
    ) -> None:
        self._blobs = blobs
        self._store: BlobStore = blobs.store
        self._writes = writes
        self._reads = reads
        self._limits = limits

    @property
    def ttl_seconds(self) -> float:
        """How long a session lives past its last chunk: the longest an upload may take."""
        return self._limits.upload_ttl_seconds

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._limits.upload_ttl_seconds)

    def create(self, token_id: str | None, name: str | None = None) -> UploadSession:
        """Open a session for ``token_id``; ``name``: the OCI repository it belongs to
        (None for a ``/v1`` session)."""
        now = datetime.now(UTC)
        row = UploadRow(
            id=secrets.token_hex(16),
            offset_bytes=0,
            created_at=now,
            updated_at=now,
            expires_at=self._expiry(now),
            token_id=token_id,
            name=name,
        )
        with self._writes.begin() as session:
            UploadRepository(session).add(row)
        return UploadSession(row.id, 0, row.expires_at, token_id, name)

    def status(self, upload_id: str, caller: str | None, name: str | None = None) -> UploadSession:
        """The session, if ``caller`` (a token id; None for admins) may use it under
        ``name`` (the OCI repository it was opened in; None for ``/v1``).

        Raises:
            UploadNotFoundError: unknown, expired, aborted, committed, another token's
                session, or one of another repository (neither is revealed).
        """
        with self._reads() as session:
            row = UploadRepository(session).get(upload_id, datetime.now(UTC))
        if row is None or (caller is not None and row.token_id != caller) or row.name != name:
            raise UploadNotFoundError(
                f"upload {upload_id} does not exist, expired, or was committed or aborted; "
                f"start a new one with {_start_hint(name)}",
                upload_id=upload_id,
            )
        return UploadSession(row.id, row.offset_bytes, row.expires_at, row.token_id, row.name)

    def _offset_mismatch(
        self, upload_id: str, sent: int, current: int, name: str | None
    ) -> UploadOffsetMismatchError:
        resume = (
            "HEAD the upload and resume from its Upload-Offset"
            if name is None
            else "GET the upload and resume after the last byte of its Range"
        )
        return UploadOffsetMismatchError(
            f"chunk sent at offset {sent} but upload {upload_id} is at offset {current}; {resume}",
            upload_offset=current,
        )

    async def append(
        self,
        upload_id: str,
        caller: str | None,
        offset: int | None,
        chunks: AsyncIterator[bytes],
        name: str | None = None,
    ) -> UploadSession:
        """Append one chunk at ``offset`` (None: wherever the session is now); the new
        session state. An empty chunk changes nothing.

        Raises:
            UploadNotFoundError, UploadOffsetMismatchError, BodyTooLargeError (past the
            blob limit), IncompleteBodyError and whatever else ``chunks`` raises
            (nothing is kept then), StorageError.
        """
        current = await anyio.to_thread.run_sync(self.status, upload_id, caller, name)
        if offset is None:
            offset = current.offset_bytes
        if current.offset_bytes != offset:
            raise self._offset_mismatch(upload_id, offset, current.offset_bytes, name)
        part_name = f"{offset:020d}-{secrets.token_hex(8)}"
        writer = await anyio.to_thread.run_sync(self._store.open_part_writer, upload_id, part_name)
        digests: BlobDigests | None = None
        try:
            if offset == 0:  # hashed as it streams: if it stays alone, it is the blob
                digests = await hash_and_write(self._within_limit(chunks, offset), writer)
                size = digests.size_bytes
            else:
                size = 0
                async for chunk in batched(self._within_limit(chunks, offset)):
                    size += len(chunk)
                    await anyio.to_thread.run_sync(writer.write, chunk)
            if size == 0:
                await anyio.to_thread.run_sync(writer.abort)
                return current
            await anyio.to_thread.run_sync(writer.commit, "")
        except BaseException:
            await anyio.to_thread.run_sync(writer.abort)
            raise
        part = UploadPartRow(
            upload_id=upload_id,
            offset_bytes=offset,
            size_bytes=size,
            part_name=part_name,
            blake3=None if digests is None else digests.blake3.hex,
            sha256=None if digests is None else digests.sha256.hex,
        )
        recorded = await anyio.to_thread.run_sync(self._record_part, upload_id, offset, part)
        if not recorded:
            await anyio.to_thread.run_sync(self._store.delete_part, upload_id, part_name)
            latest = await anyio.to_thread.run_sync(self.status, upload_id, caller, name)
            raise self._offset_mismatch(upload_id, offset, latest.offset_bytes, name)
        return UploadSession(upload_id, offset + size, current.expires_at, current.token_id, name)

    def _record_part(self, upload_id: str, offset: int, part: UploadPartRow) -> bool:
        now = datetime.now(UTC)
        with self._writes.begin() as session:
            return UploadRepository(session).advance(
                upload_id, offset, part, now, self._expiry(now)
            )

    async def commit(
        self,
        upload_id: str,
        caller: str | None,
        claimed: Digest,
        name: str | None = None,
        final: AsyncIterator[bytes] | None = None,
        final_offset: int | None = None,
    ) -> tuple[BlobInfo, bool]:
        """Verify and publish the uploaded bytes, followed by ``final`` (the last chunk,
        sent with the commit; it must start at ``final_offset`` when that is given), as
        a blob, then end the session.

        The final chunk is hashed and written with the parts in one pass, never kept as
        a part: a refused commit leaves the session as it was.

        Raises:
            UploadNotFoundError, UploadOffsetMismatchError (``final_offset`` is not
            the session's offset), DigestMismatchError (the session stays, so the
            client can inspect or abort it), BodyTooLargeError (past the blob limit),
            whatever ``final`` raises, StorageError.
        """
        current = await anyio.to_thread.run_sync(self.status, upload_id, caller, name)
        if final_offset is not None and final_offset != current.offset_bytes:
            raise self._offset_mismatch(upload_id, final_offset, current.offset_bytes, name)
        parts = await anyio.to_thread.run_sync(self._parts, upload_id)
        lone = _lone_digests(parts) if final is None else None
        if lone is not None:  # one part, hashed as it came: publish it without reading it
            result = await anyio.to_thread.run_sync(
                self._blobs.publish_part, claimed, upload_id, parts[0].part_name, lone
            )
            await anyio.to_thread.run_sync(self._remove, upload_id)
            return result
        stream = self._read_parts(upload_id, parts)
        if final is not None:
            end = parts[-1].offset_bytes + parts[-1].size_bytes if parts else 0
            stream = _chain(stream, self._within_limit(final, end))
        writer = await anyio.to_thread.run_sync(self._store.open_writer)
        try:
            digests = await hash_and_write(stream, writer)
            result = await anyio.to_thread.run_sync(self._blobs.publish, claimed, writer, digests)
        except BaseException:
            await anyio.to_thread.run_sync(writer.abort)
            raise
        await anyio.to_thread.run_sync(self._remove, upload_id)
        return result

    def _parts(self, upload_id: str) -> list[UploadPartRow]:
        with self._reads() as session:
            return UploadRepository(session).parts(upload_id)

    async def _read_parts(self, upload_id: str, parts: list[UploadPartRow]) -> AsyncIterator[bytes]:
        expected = 0
        for part in parts:
            if part.offset_bytes != expected:
                raise UploadOffsetMismatchError(
                    f"upload {upload_id} has a gap at offset {expected}; abort it and start again",
                    upload_offset=expected,
                )
            stream = await anyio.to_thread.run_sync(
                self._store.read_part, upload_id, part.part_name
            )
            while True:
                chunk = await anyio.to_thread.run_sync(next, stream, None)
                if chunk is None:
                    break
                yield chunk
            expected += part.size_bytes

    async def _within_limit(self, chunks: AsyncIterator[bytes], start: int) -> AsyncIterator[bytes]:
        """``chunks``, refused once ``start`` plus their length passes the blob limit."""
        size = start
        async for chunk in chunks:
            size += len(chunk)
            if size > self._limits.max_blob_bytes:
                raise BodyTooLargeError(
                    f"upload would exceed the blob limit of "
                    f"{format_size(self._limits.max_blob_bytes)}",
                    limit_bytes=self._limits.max_blob_bytes,
                )
            yield chunk

    def abort(self, upload_id: str, caller: str | None, name: str | None = None) -> None:
        """Remove the session and its parts. Raises UploadNotFoundError."""
        self.status(upload_id, caller, name)
        self._remove(upload_id)

    def _remove(self, upload_id: str) -> None:
        with self._writes.begin() as session:
            UploadRepository(session).remove(upload_id)
        self._store.delete_upload(upload_id)

    def expire(self) -> int:
        """Remove expired sessions with their parts; how many sessions went."""
        removed = 0
        with self._writes.begin() as session:
            repo = UploadRepository(session)
            expired = repo.expired_ids(datetime.now(UTC))
            for upload_id in expired:
                repo.remove(upload_id)
        for upload_id in expired:
            self._store.delete_upload(upload_id)
            removed += 1
        return removed

    def remove_unowned(self) -> int:
        """Remove stored parts that no session owns (a process died between removing a
        session's row and its parts); how many uploads' parts went.

        A session's row is written before any of its parts, so parts without a row
        belong to no live session."""
        stored = self._store.list_upload_ids()
        with self._reads() as session:
            live = UploadRepository(session).known_ids(stored)
        unowned = set(stored) - live
        for upload_id in unowned:
            self._store.delete_upload(upload_id)
        return len(unowned)
