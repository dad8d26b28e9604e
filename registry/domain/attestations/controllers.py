"""``/v1/artifacts/{digest}/attestations``: post signed statements, read them back."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery

from registry.bodies import read_body
from registry.core.digest import Digest
from registry.core.roles import Role
from registry.deps import SettingsDep
from registry.domain.attestations.deps import AttestationServiceDep
from registry.domain.attestations.schemas import Attestation, AttestationPage
from registry.domain.auth.guards import principal_of, readers, requires

AnyRequest = Request[Any, Any, Any]
signers = requires(Role.PUBLISHER, Role.WORKER, Role.GOVERNOR)


class AttestationController(Controller):
    path = "/v1/artifacts/{digest:str}/attestations"

    @post("", guards=[signers], request_max_body_size=None)
    async def post_attestation(
        self,
        request: AnyRequest,
        digest: FromPath[str],
        attestation_service: AttestationServiceDep,
        settings: SettingsDep,
    ) -> Response[Attestation]:
        ref = Digest.parse(digest)
        raw = await read_body(request, settings.limits.max_json_body_bytes, "envelope")
        attestation, created = await anyio.to_thread.run_sync(
            attestation_service.post, ref, raw, principal_of(request).token_id
        )
        return Response(attestation, status_code=201 if created else 200)

    @get("", guards=[readers])
    async def list_attestations(
        self,
        digest: FromPath[str],
        attestation_service: AttestationServiceDep,
        predicate_type: FromQuery[str | None] = None,
    ) -> AttestationPage:
        found = await anyio.to_thread.run_sync(
            attestation_service.list, Digest.parse(digest), predicate_type
        )
        return AttestationPage(attestations=found)
