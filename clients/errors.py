"""The client's one error tree; the CLI maps each class to an exit code.

Invariants:
- Every failure the SDK reports on purpose is a ``ReliquaryError``; httpx's own
  exceptions never escape ``clients.client`` (they become ``TransportError``).
- ``problem`` holds the server's RFC 9457 problem+json body exactly as parsed
  (``type``, ``title``, ``status``, ``detail`` and any extra fields such as
  ``existing_digest``/``pushed_digest`` or ``missing``), or ``None`` when the
  failure was local or the response had no problem body.
- ``status`` is the HTTP status that caused the error, or ``None``.
- A digest the server itself found not to match the bytes we sent
  (problem type ``digest-mismatch``) is a ``VerificationError``, the same class as
  a mismatch the client detects.
- A 409 of type ``policy-unmet`` is a ``PolicyUnmetError`` (a ``RefusedError``)
  whose ``requirements`` are the problem's list.
"""

from __future__ import annotations

from typing import Any

import httpx

from registry.core.canonical import loads_strict
from registry.core.problems import PROBLEM_BASE

LOGIN_HINT = "check the token: run `reliquary login` to store a valid one"


class ReliquaryError(Exception):
    """Base of every error the client raises on purpose."""

    exit_code = 1

    def __init__(
        self, message: str, *, problem: dict[str, Any] | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.problem = problem
        self.status = status

    @property
    def slug(self) -> str | None:
        """The problem ``type`` without its base URL (``version-taken``), if any."""
        kind = (self.problem or {}).get("type")
        if not isinstance(kind, str):
            return None
        return kind.removeprefix(PROBLEM_BASE)


class TransportError(ReliquaryError):
    """The registry could not be reached (refused, reset, timed out) after retries."""


class AuthError(ReliquaryError):
    """401/403: the token is missing, unknown, expired, revoked, or lacks the role."""

    exit_code = 6


class NotFoundError(ReliquaryError):
    """404: no such blob, artifact, version or upload session."""

    exit_code = 3


class RefusedError(ReliquaryError):
    """409/422: the registry refused a well-formed request (version taken, missing blobs)."""

    exit_code = 5


class PolicyUnmetError(RefusedError):
    """409 ``policy-unmet``: the channel's policy refused a promotion.

    ``problem["requirements"]`` lists every requirement as the registry evaluated
    it (``{"requirement", "met", "reason"}``); ``requirements`` reads it.
    """

    @property
    def requirements(self) -> list[dict[str, Any]]:
        """Every requirement the refusal listed (objects only; empty if it listed none)."""
        listed = (self.problem or {}).get("requirements")
        if not isinstance(listed, list):
            return []
        return [r for r in listed if isinstance(r, dict)]

    @property
    def unmet(self) -> list[dict[str, Any]]:
        """The requirements the refusal says are not met."""
        return [r for r in self.requirements if r.get("met") is not True]


class InvalidRequestError(ReliquaryError):
    """Any other 4xx: the request itself was malformed or too large."""

    exit_code = 2


class ServerError(ReliquaryError):
    """5xx, still failing after retries."""


class VerificationError(ReliquaryError):
    """Bytes or digests did not match what was claimed; nothing was trusted or stored."""

    exit_code = 4


def _problem_of(response: httpx.Response) -> dict[str, Any] | None:
    """The response's JSON object body, if it has one (HEAD answers have none)."""
    if response.request.method == "HEAD" or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = loads_strict(response.content)
    except (ValueError, httpx.ResponseNotRead):  # InvalidJSONError is a ValueError
        return None
    return body if isinstance(body, dict) else None


def _message(response: httpx.Response, problem: dict[str, Any] | None) -> str:
    request = response.request
    where = f"{request.method} {request.url.copy_with(query=None)}"
    status = response.status_code
    if problem is None:
        return f"{where} answered HTTP {status} {response.reason_phrase}".rstrip()
    detail = problem.get("detail") or f"{where} failed"
    title = problem.get("title") or response.reason_phrase
    return f"{detail} ({title}, HTTP {status})"


def _class_for(status: int, slug: str | None) -> type[ReliquaryError]:
    if slug == "digest-mismatch":
        return VerificationError
    if status == 409 and slug == "policy-unmet":
        return PolicyUnmetError
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status in (409, 422):
        return RefusedError
    if 400 <= status < 500:
        return InvalidRequestError
    if status >= 500:
        return ServerError
    return ReliquaryError


def error_from_response(response: httpx.Response) -> ReliquaryError:
    """The error for a non-2xx ``response`` (whose body has been read).

    The class follows the status (and the ``digest-mismatch`` type slug); the
    message is the problem's ``detail`` with its title and status, plus a hint to
    log in again for 401/403.
    """
    problem = _problem_of(response)
    kind = (problem or {}).get("type")
    slug = kind.removeprefix(PROBLEM_BASE) if isinstance(kind, str) else None
    cls = _class_for(response.status_code, slug)
    message = _message(response, problem)
    if cls is AuthError:
        message = f"{message}; {LOGIN_HINT}"
    return cls(message, problem=problem, status=response.status_code)
