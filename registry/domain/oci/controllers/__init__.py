"""The OCI distribution API under ``/v2`` (distribution-spec v1.1).

``GET /v2/`` is an ordinary route; every other path goes through one catch-all route
that matches it against ``registry.domain.oci.routes.OCI_ROUTES``, checks the access the
route needs (``repository_access``) and calls the route's handler from ``HANDLERS``.
Errors under ``/v2`` are answered in the OCI error body (``registry.ocierrors``).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, head, route
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException

from registry.core.images import image_name_problem
from registry.deps import MetricsDep, SettingsDep
from registry.domain.auth.guards import logged_in, repository_access
from registry.domain.blobs.deps import UploadServiceDep
from registry.domain.oci.controllers.blobs import BLOB_HANDLERS
from registry.domain.oci.controllers.call import AnyRequest, OciCall, OciHandler
from registry.domain.oci.controllers.manifests import MANIFEST_HANDLERS
from registry.domain.oci.controllers.uploads import UPLOAD_HANDLERS
from registry.domain.oci.deps import OciServiceDep
from registry.domain.oci.routes import match, misnamed, scope_of
from registry.errors import InvalidRepositoryNameError
from registry.ocierrors import API_VERSION_HEADER

HANDLERS: dict[str, OciHandler] = {**BLOB_HANDLERS, **UPLOAD_HANDLERS, **MANIFEST_HANDLERS}


def _unrouted(path: str) -> HTTPException:
    return NotFoundException(
        f"no OCI distribution endpoint at {path}; see GET /schema for the /v2 routes"
    )


class OciController(Controller):
    path = "/v2"

    # a 401 here, even with anonymous reads on, is how clients learn where to log in
    @get("", guards=[logged_in])
    async def base(self) -> Response[dict[str, Any]]:
        return Response({}, headers=API_VERSION_HEADER)

    async def _dispatch(
        self,
        request: AnyRequest,
        oci_service: OciServiceDep,
        upload_service: UploadServiceDep,
        settings: SettingsDep,
        metrics: MetricsDep,
    ) -> Response[Any]:
        path = "/v2" + request.scope["path"].removeprefix("/v2")
        found = match(request.method, path)
        if found is None:
            name = misnamed(path)
            problem = None if name is None else image_name_problem(name)
            if problem is not None:
                raise InvalidRepositoryNameError(problem, name=name)
            raise _unrouted(path)
        if found.route is None:
            raise MethodNotAllowedException(
                f"{request.method} is not served at {path}; it answers {', '.join(found.allowed)}",
                headers={"allow": ", ".join(found.allowed)},
            )
        oci_route = found.route
        request.scope["path_template"] = oci_route.template  # metrics label
        name = found.params.get("name")
        if name is not None and (problem := image_name_problem(name)) is not None:
            raise InvalidRepositoryNameError(problem, name=name)
        principal = await repository_access(
            request, oci_route.access, scope_of(oci_route.access, name)
        )
        handler = HANDLERS.get(oci_route.endpoint)
        if handler is None:
            raise _unrouted(path)
        call = OciCall(
            request, found.params, principal, oci_service, upload_service, settings, metrics
        )
        response = await handler(call)
        response.headers.update(API_VERSION_HEADER)
        return response

    @route(
        "/{path:path}",
        http_method=["GET", "PUT", "POST", "PATCH", "DELETE"],
        include_in_schema=False,
        request_max_body_size=None,  # each handler limits the body it reads
    )
    async def dispatch(
        self,
        request: AnyRequest,
        oci_service: OciServiceDep,
        upload_service: UploadServiceDep,
        settings: SettingsDep,
        metrics: MetricsDep,
    ) -> Response[Any]:
        return await self._dispatch(request, oci_service, upload_service, settings, metrics)

    @head("/{path:path}", include_in_schema=False)
    async def dispatch_head(
        self,
        request: AnyRequest,
        oci_service: OciServiceDep,
        upload_service: UploadServiceDep,
        settings: SettingsDep,
        metrics: MetricsDep,
    ) -> Response[None]:
        return await self._dispatch(request, oci_service, upload_service, settings, metrics)
