"""Retrying HTTP under the SDK: one ``httpx.Client``, backoff with jitter, typed errors.

Invariants:
- Only 2xx responses leave ``HttpSession.request``. Every other answer becomes
  the matching ``clients.errors`` class (``error_from_response``) and every httpx
  exception a ``TransportError`` naming the URL; httpx errors never escape.
- A request is sent again only when that cannot change the outcome:
  ``Retry.IDEMPOTENT`` requests (GET/HEAD, PUT by digest) after connection errors,
  429 and 5xx; ``Retry.CONNECT_ONLY`` requests (POST, PATCH) only when no
  connection was made, so nothing reached the server.
- Request bodies come from a factory called once per attempt, so every attempt
  streams a fresh iterator from disk and nothing is held whole in memory.
- The bearer token only goes to the configured origin. The one redirect followed
  (a blob GET to an object store's presigned URL) is fetched by a second client
  that holds no token, never from https down to http.
- ``HttpSession`` holds no per-request state; one may be shared by many threads.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from pathlib import Path

import httpx

from clients import __version__
from clients.errors import ReliquaryError, TransportError, error_from_response
from registry.core.errors import InvalidNumberError
from registry.core.numbers import parse_decimal

PIECE_BYTES = 2**20  # read and write files in 1 MiB pieces
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 30.0
OCTETS = "application/octet-stream"

Body = bytes | Callable[[], Iterator[bytes]] | None


class Retry(Enum):
    IDEMPOTENT = "idempotent"
    CONNECT_ONLY = "connect-only"


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


class HttpSession:
    """The connection pool and retry policy every ``RegistryClient`` call goes through."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_seconds: float,
        max_retries: int,
        backoff_seconds: float,
    ) -> None:
        headers = {"user-agent": f"reliquary/{__version__}"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        timeout = httpx.Timeout(timeout_seconds, connect=CONNECT_TIMEOUT_SECONDS)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, limits=limits
        )
        # where the registry redirects to (an object store's presigned URLs): no token
        self._elsewhere = httpx.Client(
            headers={"user-agent": headers["user-agent"]},
            timeout=timeout,
            limits=limits,
        )
        self.max_retries = max_retries
        self._backoff_seconds = backoff_seconds

    @property
    def base_url(self) -> httpx.URL:
        return self._http.base_url

    def close(self) -> None:
        self._http.close()
        self._elsewhere.close()

    def resolve(self, location: str) -> httpx.URL:
        """``location`` made absolute against the base URL.

        Raises:
            ReliquaryError: it names another scheme, host or port.
        """
        url = self.base_url.join(location)
        base = self.base_url
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise ReliquaryError(
                f"the registry at {base} pointed at {url}, another origin; refusing to follow it"
            )
        return url

    def backoff(self, attempt: int, response: httpx.Response | None = None) -> None:
        """Sleep before retry number ``attempt`` (1-based): Retry-After, else 2^n with jitter."""
        delay = self._backoff_seconds * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)  # noqa: S311 -- jitter, not crypto
        retry_after = response.headers.get("retry-after", "") if response is not None else ""
        if retry_after:  # delay-seconds; an HTTP-date or anything else keeps the backoff
            with contextlib.suppress(InvalidNumberError):
                delay = float(parse_decimal(retry_after, "Retry-After"))
        time.sleep(min(delay, MAX_BACKOFF_SECONDS))

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        retry: Retry,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send with retries; the 2xx response (its body unread when ``stream``).

        A streamed response must be closed by the caller. ``follow_redirects``: a
        redirect's target (a presigned object-store URL) is fetched by a client that
        holds no token, with this request's own headers only.

        Raises:
            TransportError: no answer after the allowed attempts.
            ReliquaryError: the subclass ``error_from_response`` picks for the last answer.
        """
        attempt = 0
        while True:
            attempt += 1
            last = attempt > self.max_retries
            try:
                response = self._attempt(
                    method, url, params, headers, body, stream, follow_redirects
                )
            except httpx.TransportError as exc:
                may_retry = retry is Retry.IDEMPOTENT or isinstance(exc, _NOT_SENT)
                if last or not may_retry:
                    raise self.transport_error(method, url, exc, attempt) from exc
                self.backoff(attempt)
                continue
            if response.is_success:
                return response
            if retry is Retry.IDEMPOTENT and _retryable_status(response.status_code) and not last:
                self.backoff(attempt, response)
                continue
            raise error_from_response(response)

    def _attempt(
        self,
        method: str,
        url: str | httpx.URL,
        params: Mapping[str, str | int] | None,
        headers: Mapping[str, str] | None,
        body: Body,
        stream: bool,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """One exchange; the body is read unless a 2xx response is to be streamed."""
        content = body() if callable(body) else body
        request = self._http.build_request(
            method, url, params=params, headers=headers, content=content
        )
        response = self._http.send(request, stream=True)
        if follow_redirects and response.is_redirect and "location" in response.headers:
            target = request.url.join(response.headers["location"])
            response.close()
            response = self._fetch_elsewhere(method, target, request.url, headers)
        if stream and response.is_success:
            return response
        try:
            response.read()
        finally:
            response.close()
        return response

    def _fetch_elsewhere(
        self,
        method: str,
        target: httpx.URL,
        origin: httpx.URL,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """Where the registry redirected a download (a presigned object-store URL): fetched
        without the token. 5xx and 429 come back for the caller to retry through the
        registry (a fresh URL); any other refusal is an error that names the store."""
        where = target.copy_with(query=None)  # the query is a credential: never print it
        if origin.scheme == "https" and target.scheme != "https":
            raise ReliquaryError(
                f"the registry redirected a download to plain-HTTP {where}; refusing to "
                "leave https (set the registry's RELIQUARY_S3_PUBLIC_ENDPOINT_URL to https)"
            )
        request = self._elsewhere.build_request(method, target, headers=headers)
        response = self._elsewhere.send(request, stream=True)
        if response.is_success or _retryable_status(response.status_code):
            return response
        try:
            detail = response.read()[:300].decode("utf-8", "replace")
        finally:
            response.close()
        raise ReliquaryError(
            f"the object store at {where}, where the registry redirected the download, "
            f"answered HTTP {response.status_code}: {detail!r}. An expired or refused "
            "presigned URL: check that the registry's and the store's clocks agree and "
            "that RELIQUARY_S3_PUBLIC_ENDPOINT_URL is the address clients use",
            status=response.status_code,
        )

    def transport_error(
        self, method: str, url: str | httpx.URL, exc: Exception, attempts: int = 1
    ) -> TransportError:
        target = self.base_url.join(url).copy_with(query=None)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        failed = _request_url(exc)
        if failed is not None and (failed.host, failed.port) != (target.host, target.port):
            return TransportError(
                f"could not reach {failed.copy_with(query=None)}, where the registry "
                f"redirected the download{tries} ({type(exc).__name__}: {exc or 'no detail'}); "
                "the registry's RELIQUARY_S3_PUBLIC_ENDPOINT_URL must be an address this "
                "machine reaches"
            )
        return TransportError(
            f"could not reach the registry: {method} {target} failed{tries} "
            f"({type(exc).__name__}: {exc or 'no detail'}); check the registry URL "
            "(`reliquary login` or RELIQUARY_URL) and that the server is running"
        )

    def iter_raw(self, response: httpx.Response) -> Iterator[bytes]:
        """The response body as it arrives, undecoded, in the pieces the socket gives
        (no re-chunking: that was one more copy of every byte).

        Raises:
            TransportError: the connection broke mid-body (resume with a Range).
        """
        try:
            yield from response.iter_raw()
        except httpx.TransportError as exc:
            raise self.transport_error(response.request.method, response.url, exc) from exc


class Progress:
    """Reports each byte position to ``on_bytes`` once, however often a range is resent."""

    def __init__(self, on_bytes: Callable[[int], None] | None) -> None:
        self._on_bytes = on_bytes
        self.reported = 0

    def reach(self, position: int) -> None:
        if position <= self.reported:
            return
        delta, self.reported = position - self.reported, position
        if self._on_bytes is not None:
            self._on_bytes(delta)


def file_pieces(path: Path, start: int, length: int, progress: Progress) -> Iterator[bytes]:
    """``length`` bytes of ``path`` from ``start``, in 1 MiB reads, reporting each once sent.

    Raises:
        ReliquaryError: the file is shorter than expected (it changed during the upload).
    """
    with path.open("rb") as file:
        file.seek(start)
        sent = 0
        while sent < length:
            piece = file.read(min(PIECE_BYTES, length - sent))
            if not piece:
                raise ReliquaryError(
                    f"{path} ended at {start + sent} bytes, expected {start + length}: "
                    "it changed while being uploaded"
                )
            yield piece
            sent += len(piece)
            progress.reach(start + sent)


def _request_url(exc: Exception) -> httpx.URL | None:
    """The URL of the request an httpx error is about, when it knows."""
    try:
        return exc.request.url if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:  # raised outside a request
        return None
