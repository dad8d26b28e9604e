"""The OpenAPI 3.1 document at ``/schema/openapi.json`` and its HTML page at ``/schema``.

Both are public (no guard), like ``/healthz``, and built once per app from the routes
it serves (``registry.openapi.document``). The page loads nothing from elsewhere.
Unknown paths under ``/schema`` answer a 404 problem like every other path.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.router import Router

from registry.openapi.document import complete
from registry.openapi.page import render

__all__ = ["API_VERSION", "openapi_config"]

API_VERSION = "1"
SCHEMA_PATH = "/schema"


class _Document:
    """The completed document of one app, made on first use (routes are final by then)."""

    def __init__(self) -> None:
        self._doc: dict[str, Any] | None = None
        self._page: bytes | None = None

    def of(self, app: Litestar, litestar_schema: dict[str, Any]) -> dict[str, Any]:
        if self._doc is None:
            self._doc = complete(litestar_schema, app)
        return self._doc

    def page(self, request: Request[Any, Any, Any], litestar_schema: dict[str, Any]) -> bytes:
        if self._page is None:
            doc = self.of(request.app, litestar_schema)
            url = OpenAPIRenderPlugin.get_openapi_json_route(request)
            self._page = render(doc, url).encode()
        return self._page


class _DocumentPlugin(JsonRenderPlugin):
    def __init__(self, document: _Document) -> None:
        super().__init__()
        self._document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self.render_json(request, self._document.of(request.app, openapi_schema))


class _PagePlugin(OpenAPIRenderPlugin):
    def __init__(self, document: _Document) -> None:
        super().__init__(path=["/", "/docs"])
        self._document = document

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return self._document.page(request, openapi_schema)


def _only_known_pages(request: Request[Any, Any, Any]) -> None:
    """Litestar answers unknown ``/schema/<x>`` with an HTML 404; ours is a problem."""
    if "path" in request.path_params:
        raise NotFoundException(
            f"no page {request.url.path}: the API reference is {SCHEMA_PATH}, "
            f"the OpenAPI document {SCHEMA_PATH}/openapi.json"
        )


def openapi_config() -> OpenAPIConfig:
    """The app's OpenAPI settings: the completed document and its page, under /schema."""
    document = _Document()
    return OpenAPIConfig(
        title="Reliquary",
        version=API_VERSION,
        path=SCHEMA_PATH,
        render_plugins=[_PagePlugin(document), _DocumentPlugin(document)],
        openapi_router=Router(
            SCHEMA_PATH,
            route_handlers=[],
            include_in_schema=False,
            before_request=_only_known_pages,
        ),
    )
