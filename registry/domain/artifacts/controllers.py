"""Artifact endpoints: push, fetch exact manifest bytes, list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from registry.bodies import read_body
from registry.core.digest import Digest
from registry.core.manifest import MANIFEST_MEDIA_TYPE
from registry.core.roles import Role
from registry.deps import SettingsDep
from registry.domain.artifacts.deps import ArtifactServiceDep
from registry.domain.artifacts.schemas import (
    Artifact,
    ArtifactPage,
    ArtifactRevoke,
)
from registry.domain.auth.guards import principal_of, publishers, readers, requires

AnyRequest = Request[Any, Any, Any]
revokers = requires(Role.GOVERNOR)


class ArtifactController(Controller):
    path = "/v1/artifacts"

    @put("", guards=[publishers], request_max_body_size=None)
    async def push(
        self, request: AnyRequest, artifact_service: ArtifactServiceDep, settings: SettingsDep
    ) -> Response[Artifact]:
        raw = await read_body(request, settings.limits.max_manifest_bytes, "manifest")
        result = await anyio.to_thread.run_sync(
            artifact_service.push, raw, principal_of(request).token_id
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
