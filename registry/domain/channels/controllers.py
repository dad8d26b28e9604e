"""Channels: governors promote and roll back; everyone reads pointers, history and status,
and resolves a name to an artifact by version or by channel (``/v1/resolve``)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from registry.core.digest import Digest
from registry.core.roles import Role
from registry.domain.artifacts.deps import ArtifactServiceDep
from registry.domain.artifacts.schemas import Artifact
from registry.domain.auth.guards import principal_of, readers, requires
from registry.domain.channels.deps import ChannelServiceDep
from registry.domain.channels.schemas import (
    ChannelEvent,
    ChannelPointer,
    ChannelStatus,
    HistoryPage,
    Promote,
    Rollback,
)
from registry.errors import InvalidRequestError

AnyRequest = Request[Any, Any, Any]
governors = requires(Role.GOVERNOR)


class ChannelController(Controller):
    path = "/v1/channels"

    @post("/promote", guards=[governors], status_code=200)
    async def promote(
        self, request: AnyRequest, data: JSONBody[Promote], channel_service: ChannelServiceDep
    ) -> ChannelEvent:
        ref, who = Digest.parse(data.digest), principal_of(request)
        return await anyio.to_thread.run_sync(
            lambda: channel_service.promote(
                data.name, data.channel, ref, data.reason, who.token_id, who.description
            )
        )

    @post("/rollback", guards=[governors], status_code=200)
    async def rollback(
        self, request: AnyRequest, data: JSONBody[Rollback], channel_service: ChannelServiceDep
    ) -> ChannelEvent:
        ref = None if data.digest is None else Digest.parse(data.digest)
        who = principal_of(request)
        return await anyio.to_thread.run_sync(
            lambda: channel_service.rollback(
                data.name, data.channel, ref, data.reason, who.token_id, who.description
            )
        )

    @get("", guards=[readers])
    async def pointers(
        self, channel_service: ChannelServiceDep, name: FromQuery[str]
    ) -> list[ChannelPointer]:
        return await anyio.to_thread.run_sync(channel_service.pointers, name)

    @get("/history", guards=[readers])
    async def history(
        self,
        channel_service: ChannelServiceDep,
        name: FromQuery[str],
        channel: FromQuery[str | None] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=32)] = None,
        limit: FromQuery[int] = 100,
    ) -> HistoryPage:
        return await anyio.to_thread.run_sync(
            lambda: channel_service.history(name, channel, cursor, limit)
        )


class StatusController(Controller):
    path = "/v1/artifacts/{digest:str}/status"

    @get("", guards=[readers])
    async def status(
        self, digest: FromPath[str], channel_service: ChannelServiceDep, channel: FromQuery[str]
    ) -> ChannelStatus:
        return await anyio.to_thread.run_sync(channel_service.status, Digest.parse(digest), channel)


class ResolveController(Controller):
    path = "/v1/resolve"

    @get("", guards=[readers])
    async def resolve(
        self,
        artifact_service: ArtifactServiceDep,
        channel_service: ChannelServiceDep,
        name: FromQuery[str],
        version: FromQuery[str | None] = None,
        channel: FromQuery[str | None] = None,
    ) -> Artifact:
        if (version is None) == (channel is None):
            raise InvalidRequestError("resolve needs ?name=… and either &version=… or &channel=…")
        if channel is not None:
            digest = await anyio.to_thread.run_sync(channel_service.resolve, name, channel)
            return await anyio.to_thread.run_sync(artifact_service.describe, digest)
        assert version is not None
        return await anyio.to_thread.run_sync(artifact_service.resolve, name, version)
