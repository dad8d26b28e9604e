"""Resumable chunked uploads: create a session, PATCH chunks at offsets, commit by digest.

Invariants:
- The server's ``Upload-Offset`` is the only truth about what it holds: after any
  failed chunk (connection error, 5xx, 409 offset mismatch) we HEAD the session
  and resend from there; ``max_retries`` failures in a row, or chunks that do
  not move the offset, give up.
- A session file, when given, is written (atomically) as soon as the session
  exists, so a process killed at any point can resume; it names the digest and
  size it is for, and is ignored for any other. It is removed after the commit
  succeeds or the server rejects the bytes' digest.
- ``POST /v1/uploads`` is sent again only when it cannot have reached the server.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx

from clients._answers import RemoteBlob, stored, upload_offset
from clients._http import OCTETS, HttpSession, Progress, Retry, file_pieces
from clients.errors import (
    NotFoundError,
    RefusedError,
    ReliquaryError,
    ServerError,
    TransportError,
    VerificationError,
)
from registry.core.digest import Digest


def read_session(session_file: Path, digest: Digest, size_bytes: int) -> str | None:
    """The saved upload location for this digest and size, or None."""
    try:
        saved = json.loads(session_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(saved, dict)
        or saved.get("digest") != str(digest)
        or saved.get("size_bytes") != size_bytes
        or not isinstance(saved.get("location"), str)
    ):
        return None
    location: str = saved["location"]
    return location


def write_session(session_file: Path, location: str, digest: Digest, size_bytes: int) -> None:
    """Record the session atomically (write a sibling, then rename it over)."""
    doc = {"location": location, "digest": str(digest), "size_bytes": size_bytes}
    session_file.parent.mkdir(parents=True, exist_ok=True)
    partial = session_file.with_name(f".{session_file.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(doc), encoding="utf-8")
    partial.replace(session_file)


class ResumableUpload:
    """One file's trip through an upload session."""

    def __init__(
        self,
        http: HttpSession,
        digest: Digest,
        path: Path,
        *,
        session_file: Path | None,
        progress: Progress,
    ) -> None:
        self._http = http
        self._digest = digest
        self._path = path
        self._size = path.stat().st_size
        self._session_file = session_file
        self._progress = progress

    def run(self, chunk_bytes: int, lookup: Callable[[Digest], RemoteBlob | None]) -> bool:
        """Send every byte and commit; True if the blob was created.

        ``lookup`` tells whether the blob exists, for a commit whose first answer was lost.
        """
        location, offset = self._open()
        self._progress.reach(offset)
        self._send_chunks(location, offset, chunk_bytes)
        return self._commit(location, lookup)

    def _open(self) -> tuple[httpx.URL, int]:
        """The session to send to and its server offset: the saved one if alive, else new."""
        saved = None
        if self._session_file is not None:
            saved = read_session(self._session_file, self._digest, self._size)
        if saved is not None:
            location = self._http.resolve(saved)
            try:
                offset = self._offset(location)
            except NotFoundError:
                offset = -1  # expired, aborted or committed: start again
            if 0 <= offset <= self._size:
                return location, offset
        response = self._http.request("POST", "/v1/uploads", retry=Retry.CONNECT_ONLY)
        if "location" not in response.headers:
            raise ReliquaryError("POST /v1/uploads answered without a Location for the session")
        location = self._http.resolve(response.headers["location"])
        if self._session_file is not None:
            write_session(self._session_file, str(location), self._digest, self._size)
        return location, 0

    def _offset(self, location: httpx.URL) -> int:
        return upload_offset(self._http.request("HEAD", location, retry=Retry.IDEMPOTENT))

    def _patch(self, location: httpx.URL, offset: int, length: int) -> int:
        """Send ``length`` bytes at ``offset``; the server's new offset."""
        response = self._http.request(
            "PATCH",
            location,
            retry=Retry.CONNECT_ONLY,
            headers={
                "upload-offset": str(offset),
                "content-length": str(length),
                "content-type": OCTETS,
            },
            body=functools.partial(file_pieces, self._path, offset, length, self._progress),
        )
        return upload_offset(response)

    def _send_chunks(self, location: httpx.URL, offset: int, chunk_bytes: int) -> None:
        failures = 0
        while offset < self._size:
            length = min(chunk_bytes, self._size - offset)
            try:
                moved_to = self._patch(location, offset, length)
            except (TransportError, ServerError, RefusedError) as exc:
                if isinstance(exc, RefusedError) and exc.slug != "upload-offset-mismatch":
                    raise
                failures += 1
                if failures > self._http.max_retries:
                    raise
                if not isinstance(exc, RefusedError):
                    self._http.backoff(failures)
                offset = self._offset(location)
                continue
            failures = 0 if moved_to > offset else failures + 1
            if failures > self._http.max_retries or moved_to > self._size:
                raise ReliquaryError(
                    f"upload {location} is at offset {moved_to} after a chunk sent at "
                    f"{offset} ({length} bytes) of a {self._size}-byte file"
                )
            offset = moved_to

    def _commit(self, location: httpx.URL, lookup: Callable[[Digest], RemoteBlob | None]) -> bool:
        try:
            response = self._http.request(
                "PUT", location, retry=Retry.IDEMPOTENT, params={"digest": str(self._digest)}
            )
        except VerificationError:
            self._forget()
            raise
        except NotFoundError:
            # a retried commit whose first answer was lost finds the session gone
            if lookup(self._digest) is None:
                raise
            created = False
        else:
            created = stored(response, self._digest, self._size)
        self._forget()
        return created

    def _forget(self) -> None:
        if self._session_file is not None:
            self._session_file.unlink(missing_ok=True)
