"""What every ``/v2`` handler is given: the request, its path parameters, the caller and
the services, so that one catch-all route can dispatch to many handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response

from registry.domain.auth.schemas import Principal
from registry.domain.blobs.uploads import UploadService
from registry.domain.oci.services import OciService
from registry.metrics import Metrics
from registry.settings import Settings

AnyRequest = Request[Any, Any, Any]
EMPTY = "application/octet-stream"  # the media type of every answer without a body


@dataclass(frozen=True, slots=True)
class OciCall:
    request: AnyRequest
    params: dict[str, str]
    principal: Principal
    oci: OciService
    uploads: UploadService
    settings: Settings
    metrics: Metrics

    @property
    def name(self) -> str:
        """The repository the request is about."""
        return self.params["name"]


OciHandler = Callable[[OciCall], Awaitable[Response[Any]]]
