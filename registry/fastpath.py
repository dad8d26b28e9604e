"""Answers the hottest immutable reads straight from memory, in front of Litestar.

``HEAD /v1/blobs/{digest}``, ``GET /v1/artifacts/{digest}`` and, under ``/v2``,
``HEAD /v2/{name}/blobs/{digest}`` and ``HEAD``/``GET /v2/{name}/manifests/{reference}``
(by tag too: tags never move) are answered here only when everything they need is
already in this process's caches: a recently authenticated token (any role may read;
a scoped ``/v2`` token must have been granted pull on the repository) and the blob's
metadata or the manifest's bytes, which never change. Anything else -- no or unknown token, a cache miss,
a malformed digest, conditional or ranged requests we do not handle -- falls
through to the Litestar app unchanged, so errors, auth and routing keep one home.
The responses are the ones the Litestar handlers give (tests compare both paths).
"""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from registry.core.digest import Digest
from registry.core.errors import CoreError
from registry.core.manifest import MANIFEST_MEDIA_TYPE
from registry.domain.artifacts.services import ArtifactService
from registry.domain.auth.schemas import Principal
from registry.domain.auth.scoped import SCOPED_PREFIX
from registry.domain.auth.services import TokenService
from registry.domain.blobs.services import BlobService
from registry.domain.oci.services import OciService
from registry.errors import AuthenticationRequiredError
from registry.metrics import Metrics
from registry.ocierrors import API_VERSION_HEADER

BLOBS = "/v1/blobs/"
MAX_ANSWERS = 10_000  # manifests whose encoded answers are kept
Headers = list[tuple[bytes, bytes]]
ManifestAnswer = tuple[Headers, Headers, bytes]  # 200 headers, 304 headers, etag
ARTIFACTS = "/v1/artifacts/"
OCI = "/v2/"
OCI_MANIFESTS = "/manifests/"
OCI_BLOBS = "/blobs/"


def _encode(headers: dict[str, str]) -> Headers:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class FastPath:
    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenService,
        blobs: BlobService,
        artifacts: ArtifactService,
        metrics: Metrics,
        oci: OciService,
        anonymous_reads: bool,
    ) -> None:
        self.app = app
        self._tokens = tokens
        self._blobs = blobs
        self._artifacts = artifacts
        self._oci = oci
        self._anonymous_reads = anonymous_reads
        self._metrics = metrics
        self.answered = 0  # requests served from memory (tests and debugging read it)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._manifest_answers: dict[Digest, ManifestAnswer] = {}

    def _series(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The metric children of one (method, route, status): ``labels()`` once, not per request."""
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:
            found = (
                self._metrics.requests.labels(method, route, str(status)),
                self._metrics.request_seconds.labels(method, route),
            )
            self._children[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            started = time.perf_counter()
            method, path = scope.get("method", ""), scope["path"]
            answered: tuple[str, int] | None = None
            if method == "HEAD" and path.startswith(BLOBS):
                answered = await self._head_blob(scope, path[len(BLOBS) :], send)
            elif method == "GET" and path.startswith(ARTIFACTS):
                answered = await self._get_manifest(scope, path[len(ARTIFACTS) :], send)
            elif method in ("HEAD", "GET") and path.startswith(OCI):
                answered = await self._oci_read(scope, method, path[len(OCI) :], send)
            if answered is not None:
                self.answered += 1
                counter, timer = self._series(method, *answered)
                counter.inc()
                timer.observe(time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

    def _reader(self, scope: Scope) -> Principal | None:
        """A cached principal for the request's bearer token, or None to fall through."""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, secret = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return None
                try:
                    return self._tokens.cached(secret.strip())
                except AuthenticationRequiredError:
                    return None
        return None

    def _puller(self, scope: Scope, name: str) -> bool:
        """Whether a cached principal may pull repository ``name`` (False: fall through)."""
        for header, value in scope["headers"]:
            if header == b"authorization":
                scheme, _, secret = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer":
                    return False
                secret = secret.strip()
                try:
                    if secret.startswith(SCOPED_PREFIX):
                        principal = self._tokens.cached_scoped(secret, self._anonymous_reads)
                    else:
                        principal = self._tokens.cached(secret)
                except AuthenticationRequiredError:
                    return False
                if principal is None:
                    return False
                return principal.grant is None or principal.grant.allows("pull", name)
        return False  # anonymous pulls take the full path (it sets no principal here)

    async def _oci_read(
        self, scope: Scope, method: str, rest: str, send: Send
    ) -> tuple[str, int] | None:
        name, sep, reference = rest.rpartition(OCI_MANIFESTS)
        if sep and name and reference and "/" not in reference:
            stored = self._oci.cached_manifest(name, reference)
            if stored is None or not self._puller(scope, name):
                return None
            headers = stored.headers() | {"content-type": stored.media_type} | API_VERSION_HEADER
            await _respond(send, 200, headers, stored.raw if method == "GET" else b"")
            return "/v2/{name}/manifests/{reference}", 200
        name, sep, reference = rest.rpartition(OCI_BLOBS)
        if method != "HEAD" or not (sep and name and reference) or "/" in reference:
            return None
        digest = self._digest(reference)
        if digest is None:
            return None
        info = self._oci.cached_blob(name, digest)
        if info is None or not self._puller(scope, name):
            return None
        headers = info.headers() | {
            "content-length": str(info.digests.size_bytes),
            "content-type": "application/octet-stream",
        }
        await _respond(send, 200, headers | API_VERSION_HEADER, b"")
        return "/v2/{name}/blobs/{digest}", 200

    @staticmethod
    def _digest(text: str) -> Digest | None:
        try:
            return Digest.parse(text)
        except CoreError:
            return None

    @staticmethod
    def _header(scope: Scope, wanted: bytes) -> bytes | None:
        for name, value in scope["headers"]:
            if name == wanted:
                return bytes(value)
        return None

    async def _head_blob(self, scope: Scope, ref: str, send: Send) -> tuple[str, int] | None:
        digest = self._digest(ref)
        if digest is None or self._reader(scope) is None:
            return None
        info = self._blobs.cached(digest)
        if info is None:
            return None
        headers = info.headers() | {
            "content-length": str(info.digests.size_bytes),
            "content-type": "application/octet-stream",
        }
        await _respond(send, 200, headers, b"")
        return "/v1/blobs/{digest}", 200

    async def _get_manifest(self, scope: Scope, ref: str, send: Send) -> tuple[str, int] | None:
        digest = self._digest(ref)
        if digest is None or self._reader(scope) is None:
            return None
        stored = self._artifacts.cached_manifest(digest)
        if stored is None:
            return None
        answer = self._manifest_answers.get(stored.digest)
        if answer is None:  # the encoded headers of both answers, made once per manifest
            if len(self._manifest_answers) >= MAX_ANSWERS:
                self._manifest_answers.clear()
            headers = stored.headers()
            full = headers | {
                "content-type": MANIFEST_MEDIA_TYPE,
                "content-length": str(len(stored.raw)),
            }
            answer = (_encode(full), _encode(headers), stored.etag.encode())
            self._manifest_answers[stored.digest] = answer
        full_headers, not_modified_headers, etag = answer
        if self._header(scope, b"if-none-match") == etag:
            await _send(send, 304, not_modified_headers, b"")
            return "/v1/artifacts/{digest}", 304
        await _send(send, 200, full_headers, stored.raw)
        return "/v1/artifacts/{digest}", 200


async def _respond(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    await _send(send, status, _encode(headers), body)


async def _send(send: Send, status: int, headers: Headers, body: bytes) -> None:
    start: Any = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
