"""``RegistryClient``: the typed SDK over the v1 HTTP API (ARCHITECTURE.md §10).

Invariants:
- One ``httpx.Client`` per ``RegistryClient`` (keep-alive, bearer token,
  ``User-Agent: reliquary/<version>``); a client may be shared by the threads of
  a ``ThreadPoolExecutor``. Retries follow ``clients._http``: idempotent calls
  (GET/HEAD, PUT of blobs and manifests, upload commits) retry on connection
  errors, 429 and 5xx; ``POST /v1/uploads`` only when nothing reached the
  server; chunk PATCHes by asking the server for its offset and resending from
  there. Key registration and revocation and attestation posts are idempotent
  on the server and retry like GETs.
- Every non-2xx answer raises the ``clients.errors`` class for it.
- The server is not trusted: ``manifest()`` returns bytes only after they hash
  to the requested digest; digests the server reports about a blob or an upload
  must name what was asked for, else ``VerificationError``. ``open_blob`` yields
  raw bytes that the caller must verify.
- Uploads stream files from disk in 1 MiB reads; ``on_bytes`` sees every byte
  position once, so its sum is the file size after a success, however often a
  range was resent.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from clients._answers import RemoteBlob, json_object, remote_blob, stored
from clients._governance_api import GovernanceApi
from clients._http import OCTETS, HttpSession, Progress, Retry, file_pieces
from clients._jobs_api import JobsApi
from clients._trust_api import TrustApi
from clients._uploads import ResumableUpload
from clients.errors import NotFoundError, ReliquaryError, VerificationError
from registry.core.digest import Algorithm, Digest, digest_bytes
from registry.core.manifest import MANIFEST_MEDIA_TYPE

MAX_MANIFEST_BYTES = 64 * 2**20  # a lying server cannot make us buffer more than this

__all__ = ["RegistryClient", "RemoteBlob"]


class RegistryClient(TrustApi, GovernanceApi, JobsApi):
    """A registry at ``base_url``, called with ``token`` (``None``: anonymous).

    Signing keys, attestations and the transparency log: see ``clients._trust_api``;
    channels, policy status, promote, rollback and history: ``clients._governance_api``;
    verification jobs: ``clients._jobs_api``.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_seconds: float = 60.0,
        max_retries: int = 4,
        backoff_seconds: float = 0.25,
    ) -> None:
        self._http = HttpSession(
            base_url,
            token,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            backoff_seconds=backoff_seconds,
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- blobs --------------------------------------------------------------------
    def blob(self, digest: Digest) -> RemoteBlob | None:
        """What the registry holds for ``digest`` (either algorithm), or None if nothing.

        Raises:
            VerificationError: the answer names other bytes. Others: see ``clients.errors``.
        """
        try:
            response = self._http.request("HEAD", f"/v1/blobs/{digest}", retry=Retry.IDEMPOTENT)
        except NotFoundError:
            return None
        h = response.headers
        return remote_blob(
            h.get("reliquary-blake3"), h.get("reliquary-sha256"), h.get("content-length"), digest
        )

    def put_blob(
        self, digest: Digest, path: Path, *, on_bytes: Callable[[int], None] | None = None
    ) -> bool:
        """Upload ``path`` in one streamed PUT; True if created, False if already stored.

        Raises:
            VerificationError: the file does not hash to ``digest`` (nothing was stored).
        """
        size = path.stat().st_size
        progress = Progress(on_bytes)
        response = self._http.request(
            "PUT",
            f"/v1/blobs/{digest}",
            retry=Retry.IDEMPOTENT,
            headers={"content-length": str(size), "content-type": OCTETS},
            body=functools.partial(file_pieces, path, 0, size, progress),
        )
        created = stored(response, digest, size)
        progress.reach(size)
        return created

    def upload_resumable(
        self,
        digest: Digest,
        path: Path,
        *,
        chunk_bytes: int = 64 * 2**20,
        session_file: Path | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> bool:
        """Upload ``path`` through a chunked session; True if created, False if already stored.

        With ``session_file``, the session is recorded there as soon as it exists and
        a later call for the same digest and size resumes it from the server's offset
        (reporting that offset to ``on_bytes`` once); a session the server no longer
        knows is replaced by a new one. The file is removed once the blob is committed.

        Raises:
            VerificationError: the uploaded bytes do not hash to ``digest``.
        """
        if chunk_bytes <= 0:
            raise ValueError("chunk_bytes must be positive")
        upload = ResumableUpload(
            self._http, digest, path, session_file=session_file, progress=Progress(on_bytes)
        )
        return upload.run(chunk_bytes, self.blob)

    @contextlib.contextmanager
    def open_blob(self, digest: Digest, *, offset: int = 0) -> Iterator[Iterator[bytes]]:
        """The blob's bytes from ``offset`` on, as raw chunks; the caller verifies them.

        Raises:
            ReliquaryError: the server ignored the Range (answered 200 for
                ``offset > 0``, or a range not starting at ``offset``).
            TransportError: the connection broke mid-body (resume with ``offset``).
        """
        headers = {"accept-encoding": "identity"}
        if offset > 0:
            headers["range"] = f"bytes={offset}-"
        response = self._http.request(  # the registry may redirect to its object store
            "GET",
            f"/v1/blobs/{digest}",
            retry=Retry.IDEMPOTENT,
            headers=headers,
            stream=True,
            follow_redirects=True,
        )
        try:
            content_range = response.headers.get("content-range", "")
            wanted = 206 if offset > 0 else 200
            if response.status_code != wanted or (
                offset > 0 and not content_range.startswith(f"bytes {offset}-")
            ):
                raise ReliquaryError(
                    f"GET {response.url.copy_with(query=None)} from offset {offset} answered HTTP "
                    f"{response.status_code} {content_range}".rstrip(),
                    status=response.status_code,
                )
            yield self._http.iter_raw(response)
        finally:
            response.close()

    # -- artifacts ------------------------------------------------------------------
    def put_manifest(self, raw: bytes) -> tuple[dict[str, Any], bool]:
        """Push canonical manifest bytes; the artifact JSON and whether it was created.

        Raises:
            RefusedError: 409 version taken (``problem`` holds ``existing_digest`` and
                ``pushed_digest``) or 422 missing blobs.
            InvalidRequestError: invalid or non-canonical manifest.
            VerificationError: the registry reports another digest for these bytes.
        """
        response = self._http.request(
            "PUT",
            "/v1/artifacts",
            retry=Retry.IDEMPOTENT,
            headers={"content-type": MANIFEST_MEDIA_TYPE},
            body=raw,
        )
        artifact = json_object(response)
        expected = digest_bytes(raw).blake3
        if artifact.get("digest") != str(expected):
            raise VerificationError(
                f"pushed a manifest whose digest is {expected} but the registry "
                f"recorded {artifact.get('digest')!r}"
            )
        return artifact, response.status_code == 201

    def manifest(self, digest: Digest) -> bytes:
        """The exact manifest bytes for ``digest``, after checking they hash to it.

        Raises:
            VerificationError: the bytes served hash to another digest, or exceed 64 MiB.
        """
        response = self._http.request(
            "GET", f"/v1/artifacts/{digest}", retry=Retry.IDEMPOTENT, stream=True
        )
        parts: list[bytes] = []
        received = 0
        with contextlib.closing(response):
            for part in self._http.iter_raw(response):
                received += len(part)
                if received > MAX_MANIFEST_BYTES:
                    raise VerificationError(
                        f"the registry served more than {MAX_MANIFEST_BYTES} bytes for "
                        f"manifest {digest}; refusing it"
                    )
                parts.append(part)
        raw = b"".join(parts)
        actual = digest_bytes(raw)
        if not actual.matches(digest):
            got = actual.blake3 if digest.algorithm is Algorithm.BLAKE3 else actual.sha256
            raise VerificationError(
                f"the registry served manifest bytes for {digest} that hash to {got}; "
                "the server or something between us altered them"
            )
        return raw

    def resolve(self, name: str, version: str) -> dict[str, Any]:
        """The artifact ``name@version`` is bound to (``digest``, ``sha256``, ...).

        Raises:
            NotFoundError: no such name or version.
        """
        response = self._http.request(
            "GET", "/v1/resolve", retry=Retry.IDEMPOTENT, params={"name": name, "version": version}
        )
        return json_object(response)

    def list_artifacts(
        self,
        *,
        name: str | None = None,
        kind: str | None = None,
        label: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """One page: ``{"artifacts": [...], "next_cursor": str | None}``; ``label`` is ``k=v``."""
        filters = {"name": name, "kind": kind, "label": label, "cursor": cursor}
        params: dict[str, str | int] = {k: v for k, v in filters.items() if v is not None}
        params["limit"] = limit
        response = self._http.request("GET", "/v1/artifacts", retry=Retry.IDEMPOTENT, params=params)
        return json_object(response)
