"""Artifact endpoints: push, fetch exact manifest bytes, list, resolve."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from registry.core.digest import Digest
from registry.core.roles import Role
from registry.domain.artifacts.deps import ArtifactServiceDep
from registry.domain.artifacts.schemas import (
    MANIFEST_MEDIA_TYPE,
    Artifact,
    ArtifactPage,
    ArtifactRevoke,
)
from registry.domain.auth.guards import principal_of, publishers, readers, requires
from registry.domain.blobs.ingest import body_chunks
from registry.domain.channels.deps import ChannelServiceDep
from registry.domain.system.deps import SettingsDep
from registry.errors import InvalidRequestError

AnyRequest = Request[Any, Any, Any]
revokers = requires(Role.GOVERNOR)


class ArtifactController(Controller):
    path = "/v1/artifacts"

    @put("", guards=[publishers], request_max_body_size=None)
    async def push(
        self, request: AnyRequest, artifact_service: ArtifactServiceDep, settings: SettingsDep
    ) -> Response[Artifact]:
        limit = settings.limits.max_manifest_bytes
        parts = [
            c async for c in body_chunks(request.receive, request.content_length, limit, "manifest")
        ]
        result = await anyio.to_thread.run_sync(
            artifact_service.push, b"".join(parts), principal_of(request).token_id
        )
        return Response(
            result.artifact,
            status_code=201 if result.created else 200,
            headers={"location": f"/v1/artifacts/{result.artifact.digest}"},
        )

    @get("/{digest:str}", guards=[readers])
    async def manifest(
        self, request: AnyRequest, digest: FromPath[str], artifact_service: ArtifactServiceDep
    ) -> Response[bytes]:
        ref = Digest.parse(digest)
        stored = artifact_service.cached_manifest(ref)
        if stored is None:
            stored = await anyio.to_thread.run_sync(artifact_service.manifest, ref)
        headers = stored.headers()
        if request.headers.get("if-none-match") == stored.etag:
            return Response(b"", status_code=304, headers=headers)
        return Response(stored.raw, media_type=MANIFEST_MEDIA_TYPE, headers=headers)

    @get("", guards=[readers])
    async def list_artifacts(
        self,
        artifact_service: ArtifactServiceDep,
        name: FromQuery[str | None] = None,
        kind: FromQuery[str | None] = None,
        label: FromQuery[str | None] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=512)] = None,
        limit: FromQuery[int] = 100,
    ) -> ArtifactPage:
        return await anyio.to_thread.run_sync(
            lambda: artifact_service.list(
                name=name, kind=kind, label=label, cursor=cursor, limit=limit
            )
        )


class RevokeController(Controller):
    path = "/v1/artifacts/{digest:str}/revoke"

    @post("", guards=[revokers], status_code=200)
    async def revoke(
        self,
        request: AnyRequest,
        digest: FromPath[str],
        data: JSONBody[ArtifactRevoke],
        artifact_service: ArtifactServiceDep,
    ) -> Artifact:
        ref = Digest.parse(digest)
        return await anyio.to_thread.run_sync(
            artifact_service.revoke, ref, data.reason, principal_of(request).token_id
        )


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
