"""Signing-key endpoints: admins register and revoke, every reader may look."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from litestar import Controller, Response, get, post
from litestar.params import FromQuery, JSONBody, PathParameter

from registry.core.roles import KeyRoleName, Role
from registry.domain.auth.guards import admins, readers
from registry.domain.keys.deps import KeyServiceDep
from registry.domain.keys.schemas import KeyCreate, KeyRevoke, RegisteredKey
from registry.errors import KeyNotFoundError

KeyId = Annotated[str, PathParameter(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")]


class KeyController(Controller):
    path = "/v1/keys"

    @post("", guards=[admins])
    async def register(
        self, data: JSONBody[KeyCreate], key_service: KeyServiceDep
    ) -> Response[RegisteredKey]:
        key, created = await anyio.to_thread.run_sync(
            key_service.register, data.public_key, Role(data.role), data.description
        )
        return Response(key, status_code=201 if created else 200)

    @get("", guards=[readers])
    async def list_keys(
        self, key_service: KeyServiceDep, role: FromQuery[KeyRoleName | None] = None
    ) -> list[RegisteredKey]:
        return await anyio.to_thread.run_sync(
            key_service.list, None if role is None else Role(role)
        )

    @get("/{keyid:str}", guards=[readers])
    async def get_key(self, keyid: KeyId, key_service: KeyServiceDep) -> RegisteredKey:
        key = await anyio.to_thread.run_sync(key_service.find, keyid)
        if key is None:
            raise KeyNotFoundError(f"no signing key {keyid}", keyid=keyid)
        return key

    @post("/{keyid:str}/revoke", guards=[admins], status_code=200)
    async def revoke(
        self, keyid: KeyId, data: JSONBody[KeyRevoke], key_service: KeyServiceDep
    ) -> RegisteredKey:
        return await anyio.to_thread.run_sync(key_service.revoke, keyid, data.reason)
