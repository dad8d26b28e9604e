"""Token administration endpoints (admin only)."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from litestar import Controller, delete, get, post
from litestar.params import JSONBody, PathParameter

from registry.core.quantity import parse_duration
from registry.domain.auth.deps import TokenServiceDep
from registry.domain.auth.guards import admins
from registry.domain.auth.schemas import IssuedToken, Token, TokenCreate


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
