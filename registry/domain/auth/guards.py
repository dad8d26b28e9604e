"""Route guards: authenticate the bearer token, then check its role.

``admin`` passes every guard. Read endpoints accept every role, and anonymous
callers too when ``RELIQUARY_ANONYMOUS_READS`` is on.

Under ``/v2`` (and only there) a caller may also authenticate the way registry
clients do: HTTP Basic with a Reliquary token as the password (any user name), or a
scoped token from ``GET /v2/token`` (``registry.domain.auth.scoped``), which also
limits the repositories and actions (``repository_access``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from registry.core.roles import READ_ROLES, Role
from registry.domain.auth.schemas import Principal
from registry.domain.auth.scoped import PUSH_ROLES, SCOPED_PREFIX, grants, parse_scope
from registry.domain.auth.services import TOKEN_PREFIX, TokenService
from registry.errors import AuthenticationRequiredError, PermissionDeniedError
from registry.ocierrors import is_oci_path

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]

_GUARD_ROLES: dict[object, frozenset[Role]] = {}  # every guard ``requires`` made: its roles

TOKEN_SERVICE_KEY = "token_service"  # noqa: S105 (a state key, not a secret)
ANONYMOUS_READS_KEY = "anonymous_reads"


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller's principal, or None when no Authorization header was sent.

    Everywhere: ``Bearer <Reliquary token>``. Under ``/v2`` also ``Basic`` with a
    Reliquary token as the password, and scoped tokens (whose principal has a grant).

    Raises:
        AuthenticationRequiredError: a header was sent but holds no valid token, or a
            scoped token outside ``/v2``.
    """
    header = connection.headers.get("authorization")
    if header is None:
        return None
    oci = is_oci_path(connection.url.path)
    scheme, _, secret = header.partition(" ")
    if oci and scheme.lower() == "basic":
        token = _basic_password(secret)
    elif scheme.lower() == "bearer" and secret.strip():
        token = secret.strip()
    elif oci:
        raise AuthenticationRequiredError(
            "send a token as 'Authorization: Bearer <token>', or a Reliquary token as the "
            "password of Basic auth (any user name)"
        )
    else:
        raise AuthenticationRequiredError("send the token as 'Authorization: Bearer <token>'")
    service: TokenService = connection.app.state[TOKEN_SERVICE_KEY]
    if token.startswith(SCOPED_PREFIX):
        if not oci:
            raise AuthenticationRequiredError(
                "a scoped token from /v2/token is good only under /v2: "
                "send your Reliquary token (rlq_...) here"
            )
        anonymous = bool(connection.app.state[ANONYMOUS_READS_KEY])
        principal = service.cached_scoped(token, anonymous)  # no thread hop if parent known
        if principal is not None:
            return principal
        return await anyio.to_thread.run_sync(service.authenticate_scoped, token, anonymous)
    principal = service.cached(token)  # no thread hop for a recently seen token
    if principal is not None:
        return principal
    return await anyio.to_thread.run_sync(service.authenticate, token)


def _basic_password(credentials: str) -> str:
    """The password of ``Basic`` credentials: what ``/v2`` takes as the token.

    Raises:
        AuthenticationRequiredError: not base64 of ``user:password``, or a password that
            is no Reliquary token.
    """
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    _, colon, password = decoded.partition(":")
    if not colon:
        raise AuthenticationRequiredError(
            "the Basic credentials are not base64 of 'user:password'; "
            "send any user name and a Reliquary token as the password"
        )
    if not password.startswith((TOKEN_PREFIX, SCOPED_PREFIX)):
        raise AuthenticationRequiredError(
            "the Basic password must be a Reliquary token (rlq_...); the user name is "
            "ignored. Create a token with `reliquary-server token create --role ...`"
        )
    return password


async def token_requests(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard of ``GET /v2/token``: a Reliquary token (Basic password or Bearer), or nobody
    when anonymous reads are on (the token issued is then pull-only).

    Raises:
        AuthenticationRequiredError: no credentials (anonymous reads off), or bad ones.
    """
    principal = await authenticate(connection)
    if principal is None:
        if not connection.app.state[ANONYMOUS_READS_KEY]:
            raise AuthenticationRequiredError(
                "log in: send a Reliquary token as the password of Basic auth, any user "
                "name (skopeo --creds any:<token>, oras login -u any -p <token>, "
                "curl -u any:<token>)"
            )
        principal = Principal(token_id=None, role=Role.READER)
    connection.state.principal = principal


_GUARD_ROLES[token_requests] = READ_ROLES


def requires(*roles: Role, anonymous: bool = True) -> Guard:
    """A guard admitting ``roles`` (and admin); an endpoint every role may call admits
    anonymous callers too when anonymous reads are on, unless ``anonymous`` is False."""
    allowed = frozenset(roles) | {Role.ADMIN}
    read_endpoint = anonymous and allowed >= READ_ROLES
    names = ", ".join(sorted(r.value for r in allowed))

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if principal is None:
            if read_endpoint and connection.app.state[ANONYMOUS_READS_KEY]:
                principal = Principal(token_id=None, role=Role.READER)
            else:
                raise AuthenticationRequiredError(
                    "this endpoint needs a bearer token (Authorization: Bearer <token>); "
                    f"allowed roles: {names}"
                )
        if principal.role not in allowed:
            raise PermissionDeniedError(
                f"role {principal.role.value!r} may not call this endpoint; allowed roles: {names}",
                allowed_roles=sorted(r.value for r in allowed),
            )
        connection.state.principal = principal

    _GUARD_ROLES[guard] = allowed
    return guard


def roles_of(guard: object) -> frozenset[Role] | None:
    """The roles ``guard`` admits (admin included) if ``requires`` made it, else None.

    The OpenAPI document reads each route's roles from here, so it cannot drift from
    what the guards enforce.
    """
    return _GUARD_ROLES.get(guard)


async def repository_access(
    connection: ASGIConnection[Any, Any, Any, Any], access: str, scope: str
) -> Principal:
    """Who may do ``access`` (``pull``, ``push`` or ``catalog``) under ``/v2``; ``scope``
    is the token scope the request needs, named in the 401 challenge so that registry
    clients fetch a token for it (``registry.ocierrors.bearer_challenge``).

    Pull and catalog admit every role (and anonymous callers when
    ``RELIQUARY_ANONYMOUS_READS`` is on); push admits publishers and admins. A scoped
    token must also have been granted every action of ``scope`` on its repository.

    Raises:
        AuthenticationRequiredError: no or an invalid token (with ``scope``); a scoped
            token not granted ``scope`` though its role may have it (challenge error
            ``insufficient_scope``: clients fetch a token for ``scope`` and retry).
        PermissionDeniedError: the token's role may not ``access``.
    """
    try:
        principal = await authenticate(connection)
    except AuthenticationRequiredError as exc:
        raise AuthenticationRequiredError(exc.detail, scope=scope) from None
    if principal is None:
        if access != "push" and connection.app.state[ANONYMOUS_READS_KEY]:
            return Principal(token_id=None, role=Role.READER)
        raise AuthenticationRequiredError(
            f"{access} needs a token: log in with a Reliquary token as the password "
            "(skopeo --creds any:<token>, oras login -p <token>)",
            scope=scope,
        )
    if access == "push" and principal.role not in PUSH_ROLES:
        raise PermissionDeniedError(
            f"role {principal.role.value!r} may not push; allowed roles: admin, publisher",
            allowed_roles=["admin", "publisher"],
        )
    if principal.grant is not None and not grants(principal.grant, parse_scope(scope)):
        raise AuthenticationRequiredError(
            f"this token was not granted {scope}: fetch one for that scope from /v2/token "
            "(registry clients do so on this challenge)",
            scope=scope,
            challenge_error="insufficient_scope",
        )
    connection.state.principal = principal
    return principal


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The principal a guard stored on this request."""
    principal = connection.state.principal
    assert isinstance(principal, Principal)
    return principal


readers = requires(*READ_ROLES)
logged_in = requires(*READ_ROLES, anonymous=False)  # any token; anonymous reads do not count
publishers = requires(Role.PUBLISHER)
admins = requires(Role.ADMIN)
