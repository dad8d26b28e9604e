"""Cross-cutting HTTP: problem+json responses, the metrics middleware, the request
class whose JSON bodies go through the one strict parser (``loads_strict``), and the
hook that refuses NUL characters in paths and queries."""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from registry.core.canonical import loads_strict
from registry.errors import AuthenticationRequiredError, InvalidRequestError, RegistryError
from registry.metrics import Metrics
from registry.ocierrors import (
    API_VERSION_HEADER,
    PUBLIC_URL_KEY,
    UNKNOWN,
    bearer_challenge,
    is_oci_path,
    oci_code_for_status,
    oci_code_of,
    oci_error_body,
)
from registry.problems import MEDIA_TYPE, extra_of, kind_of, problem_body, slug_for_status

log = logging.getLogger("reliquary.http")


def _problem(
    request: Request[Any, Any, Any],
    status: int,
    slug: str,
    title: str,
    detail: str,
    extra: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body = problem_body(status, slug, title, detail, request.url.path, extra)
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def oci_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Translate any exception into the OCI distribution error body (``registry.ocierrors``);
    a 401 names the token endpoint and the scope the request needed."""
    code = oci_code_of(exc)
    headers: dict[str, str] = dict(API_VERSION_HEADER)
    detail: Any = {}
    if code is not None:
        message = exc.detail if isinstance(exc, RegistryError) else str(exc)
        detail = extra_of(exc)
    elif isinstance(exc, HTTPException):
        code = oci_code_for_status(exc.status_code)
        message = str(exc.detail)
        headers |= {k.lower(): v for k, v in (exc.headers or {}).items()}
    else:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        code = UNKNOWN
        message = (
            "the registry failed unexpectedly; nothing was changed by a failed write. "
            "Retry, and report it with the time of the request if it persists"
        )
    if code.status == 401:
        scope = detail.pop("scope", None) if isinstance(detail, dict) else None
        error = detail.pop("challenge_error", None) if isinstance(detail, dict) else None
        base_url = request.app.state.get(PUBLIC_URL_KEY) or str(request.base_url)
        headers["www-authenticate"] = bearer_challenge(base_url, scope, error)
    if code.status == 416 and isinstance(detail, dict) and "upload_offset" in detail:
        offset = int(detail["upload_offset"])
        headers["range"] = f"0-{max(offset - 1, 0)}"
    if code.status == 416 and isinstance(detail, dict) and "size_bytes" in detail:
        headers["content-range"] = f"bytes */{detail['size_bytes']}"  # a blob GET's Range
    body = msgspec.json.encode(oci_error_body(code.code, message, detail))
    return Response(body, status_code=code.status, media_type="application/json", headers=headers)


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Translate any exception into an RFC 9457 problem+json response (under ``/v2``, the
    OCI error body instead: ``oci_error_response``)."""
    if is_oci_path(request.url.path):
        return oci_error_response(request, exc)
    kind = kind_of(exc)
    if kind is not None:
        extra = extra_of(exc)
        detail = exc.detail if isinstance(exc, RegistryError) else str(exc)
        headers = None
        if isinstance(exc, AuthenticationRequiredError):
            headers = {"www-authenticate": 'Bearer realm="reliquary"'}
        if kind.status == 416 and "size_bytes" in extra:
            headers = {"content-range": f"bytes */{extra['size_bytes']}"}
        return _problem(request, kind.status, kind.slug, kind.title, detail, extra, headers)
    if isinstance(exc, HTTPException):
        extra = {"errors": exc.extra} if exc.extra else {}
        title = type(exc).__name__.removesuffix("Exception") or "HTTP error"
        return _problem(
            request,
            exc.status_code,
            slug_for_status(exc.status_code),
            title,
            str(exc.detail),
            extra,
            dict(exc.headers or {}),
        )
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem(
        request,
        500,
        "internal",
        "Internal error",
        "the registry failed unexpectedly; nothing was changed by a failed write. "
        "Retry, and report it with the time of the request if it persists",
        {},
    )


class StrictJSONRequest(Request[Any, Any, Any]):
    """A request whose JSON body (every ``data: JSONBody[...]`` parameter) is parsed by
    ``registry.core.canonical.loads_strict``, like manifests and envelopes: duplicate
    keys, nesting past ``MAX_DEPTH``, over-long numbers and NaN are a 400
    ``invalid-json``, never a 500 or a silently dropped key.

    Raises:
        InvalidJSONError: from ``json()``, when the body is not strict JSON.
    """

    async def json(self) -> Any:
        return loads_strict(await self.body() or b"null")  # refuses NUL in strings too


def refuse_nul(request: Request[Any, Any, Any]) -> None:
    """Before every handler: no NUL character (U+0000, ``%00``) in the path or the query.

    PostgreSQL can neither store nor compare text holding NUL (SQLite can), so such a
    value answered 500 on one deployment and was taken on the other; no name, id,
    digest, cursor or filter needs it. JSON bodies are held to the same rule by
    ``StrictJSONRequest``.

    Raises:
        InvalidRequestError: the decoded path or a query parameter holds NUL.
    """
    if "\x00" in request.scope["path"]:
        raise InvalidRequestError(
            "the path holds a NUL character (%00); no path segment accepts it"
        )
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise InvalidRequestError(
                f"query parameter {name!r} holds a NUL character (%00); no parameter accepts it"
            )


class MetricsMiddleware:
    """Counts requests by method, route template and status, and times them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("path_template") or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.request_seconds.labels(method, route).observe(
                time.perf_counter() - started
            )


class HeadResponse(Response[None]):
    """A HEAD answer: the GET's headers (Content-Length included) and no body."""

    def render(self, content: Any, media_type: str, enc_hook: Any = None) -> bytes:
        return b""
