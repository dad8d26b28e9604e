"""Token administration endpoints (admin only), and the ``/v2`` token endpoint registry
clients log in through."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from registry.core.quantity import parse_duration
from registry.domain.auth.deps import TokenServiceDep
from registry.domain.auth.guards import admins, principal_of, token_requests
from registry.domain.auth.schemas import IssuedToken, RegistryToken, Token, TokenCreate
from registry.errors import InvalidRequestError
from registry.ocierrors import SERVICE


class TokenController(Controller):
    path = "/v1/tokens"
    guards = [admins]

    @post("", status_code=201)
    async def issue(
        self, data: JSONBody[TokenCreate], token_service: TokenServiceDep
    ) -> IssuedToken:
        expires = None if data.expires_in is None else parse_duration(data.expires_in)
        return await anyio.to_thread.run_sync(
            token_service.issue, data.role, data.description, expires
        )

    @get("")
    async def list_tokens(self, token_service: TokenServiceDep) -> list[Token]:
        return await anyio.to_thread.run_sync(token_service.list)

    @delete("/{token_id:str}", status_code=204)
    async def revoke(
        self,
        token_service: TokenServiceDep,
        token_id: Annotated[str, PathParameter(max_length=64)],
    ) -> None:
        await anyio.to_thread.run_sync(token_service.revoke, token_id)


class RegistryTokenController(Controller):
    """``GET /v2/token``: the token endpoint a ``/v2`` 401 challenge names (distribution
    ``spec/auth/token.md``)."""

    path = "/v2/token"

    @get("", guards=[token_requests])
    async def token(
        self,
        request: Request[Any, Any, Any],
        token_service: TokenServiceDep,
        scopes: Annotated[list[str] | None, QueryParameter(name="scope", required=False)] = None,
        service: Annotated[str | None, QueryParameter(max_length=255, required=False)] = None,
        account: Annotated[str | None, QueryParameter(max_length=255, required=False)] = None,
    ) -> Response[RegistryToken]:
        if service is not None and service != SERVICE:
            raise InvalidRequestError(
                f"this is the token endpoint of service {SERVICE!r}, not {service!r}: "
                "use the realm of that service's challenge"
            )
        del account  # the user name is ignored: the token is the credential
        issued = token_service.issue_scoped(principal_of(request), scopes or [])
        return Response(
            issued,
            headers={
                "cache-control": "no-store",
                "docker-distribution-api-version": "registry/2.0",
            },
        )
