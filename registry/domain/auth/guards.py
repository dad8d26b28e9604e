"""Route guards: authenticate the bearer token, then check its role.

``admin`` passes every guard. Read endpoints accept every role, and anonymous
callers too when ``RELIQUARY_ANONYMOUS_READS`` is on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from registry.core.roles import READ_ROLES, Role
from registry.domain.auth.schemas import Principal
from registry.domain.auth.services import TokenService
from registry.errors import AuthenticationRequiredError, PermissionDeniedError

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]

_GUARD_ROLES: dict[object, frozenset[Role]] = {}  # every guard ``requires`` made: its roles

TOKEN_SERVICE_KEY = "token_service"  # noqa: S105 (a state key, not a secret)
ANONYMOUS_READS_KEY = "anonymous_reads"


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller's principal, or None when no Authorization header was sent.

    Raises:
        AuthenticationRequiredError: a header was sent but is not a valid bearer token.
    """
    header = connection.headers.get("authorization")
    if header is None:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationRequiredError("send the token as 'Authorization: Bearer <token>'")
    service: TokenService = connection.app.state[TOKEN_SERVICE_KEY]
    token = secret.strip()
    principal = service.cached(token)  # no thread hop for a recently seen token
    if principal is not None:
        return principal
    return await anyio.to_thread.run_sync(service.authenticate, token)


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
    ``RELIQUARY_ANONYMOUS_READS`` is on); push admits publishers and admins.

    Raises:
        AuthenticationRequiredError: no or an invalid token (with ``scope``).
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
    if access == "push" and principal.role not in (Role.PUBLISHER, Role.ADMIN):
        raise PermissionDeniedError(
            f"role {principal.role.value!r} may not push; allowed roles: admin, publisher",
            allowed_roles=["admin", "publisher"],
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
