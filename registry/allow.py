"""``OPTIONS``: the ``Allow`` header lists every method the path takes.

Litestar 2 builds one route per path but keeps the ``OPTIONS`` handler made when
the path's first handler was registered, so ``OPTIONS /v1/blobs/{digest}``
answered ``Allow: GET, OPTIONS`` although the path also takes HEAD and PUT
(litestar-org/litestar#4169, fixed in Litestar 3 only). This middleware answers
``OPTIONS`` itself from the app's merged routes, which hold every method. A 405
already carries the full set: Litestar's router takes it from the same routes.

The fast path (``registry.fastpath``) answers only HEAD and GET, so every
``OPTIONS`` request reaches this middleware, after Litestar's routing has set
the matched route's ``path_template``. Under ``/v2`` one catch-all route serves
every repository path: its methods come from the OCI route table
(``registry.domain.oci.routes.match``), per path.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from registry.domain.oci.routes import OCI_CATCH_ALL, match


def allowed_methods(app: Litestar) -> dict[str, str]:
    """``Allow`` values by route template (``/v1/blobs/{digest}``), methods sorted."""
    methods: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            methods.setdefault(route.path_format, set()).update(route.methods)
    return {path: ", ".join(sorted(found)) for path, found in methods.items()}


class AllowMiddleware:
    """Answers ``OPTIONS`` with 204 and ``Allow`` naming every method of the path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._allowed: dict[str, str] | None = None  # filled on the first OPTIONS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        if self._allowed is None:
            self._allowed = allowed_methods(Litestar.from_scope(scope))
        template = scope.get("path_template", "")
        if template == OCI_CATCH_ALL:
            found = match("OPTIONS", scope["path"])
            allow = None if found is None else ", ".join(sorted({*found.allowed, "OPTIONS"}))
        else:
            allow = self._allowed.get(template)
        if allow is None:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"allow", allow.encode("latin-1"))],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
