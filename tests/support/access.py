"""Who may call what: every route of the API with the token roles it admits.

``MATRIX`` is the one statement of it: ``tests/api/test_auth.py`` proves each row by
calling the route with each role's token (and checks that no route is missing), and
``tests/api/test_openapi.py`` checks that the OpenAPI document names the same roles.
"""

from __future__ import annotations

from registry.core.roles import Role
from registry.domain.oci.routes import OCI_ROUTES

DIGEST = "blake3:" + "0" * 64  # no blob or artifact has it
UPLOAD = "/v1/uploads/" + "0" * 32
JOB = "f" * 32
KEYID = "0" * 64

EVERYONE = frozenset(Role)
PUBLISH = frozenset({Role.PUBLISHER, Role.ADMIN})
ADMIN = frozenset({Role.ADMIN})
GOVERN = frozenset({Role.GOVERNOR, Role.ADMIN})
WORKERS = frozenset({Role.WORKER, Role.ADMIN})
REQUESTERS = frozenset({Role.PUBLISHER, Role.GOVERNOR, Role.ADMIN})
SIGNERS = frozenset({Role.PUBLISHER, Role.WORKER, Role.GOVERNOR, Role.ADMIN})

# (method, path template, concrete path, roles allowed); None = no token needed
MATRIX: list[tuple[str, str, str, frozenset[Role] | None]] = [
    ("GET", "/healthz", "/healthz", None),
    ("GET", "/readyz", "/readyz", None),
    ("GET", "/metrics", "/metrics", None),
    ("GET", "/schema", "/schema", None),
    ("GET", "/schema/docs", "/schema/docs", None),
    ("GET", "/schema/openapi.json", "/schema/openapi.json", None),
    ("GET", "/schema/{path:str}", "/schema/no-such-page", None),  # a 404 problem, no 401
    ("GET", "/v2", "/v2/", EVERYONE),
    ("GET", "/v2/token", "/v2/token?service=reliquary&scope=repository:library/app:pull", EVERYONE),
    ("HEAD", "/v1/blobs/{digest:str}", f"/v1/blobs/{DIGEST}", EVERYONE),
    ("GET", "/v1/blobs/{digest:str}", f"/v1/blobs/{DIGEST}", EVERYONE),
    ("PUT", "/v1/blobs/{digest:str}", f"/v1/blobs/{DIGEST}", PUBLISH),
    ("POST", "/v1/uploads", "/v1/uploads", PUBLISH),
    ("HEAD", "/v1/uploads/{upload_id:str}", UPLOAD, PUBLISH),
    ("PATCH", "/v1/uploads/{upload_id:str}", UPLOAD, PUBLISH),
    ("PUT", "/v1/uploads/{upload_id:str}", UPLOAD, PUBLISH),
    ("DELETE", "/v1/uploads/{upload_id:str}", UPLOAD, PUBLISH),
    ("PUT", "/v1/artifacts", "/v1/artifacts", PUBLISH),
    ("GET", "/v1/artifacts", "/v1/artifacts", EVERYONE),
    ("GET", "/v1/artifacts/{digest:str}", f"/v1/artifacts/{DIGEST}", EVERYONE),
    ("GET", "/v1/resolve", "/v1/resolve?name=a&version=v1", EVERYONE),
    ("POST", "/v1/tokens", "/v1/tokens", ADMIN),
    ("GET", "/v1/tokens", "/v1/tokens", ADMIN),
    ("DELETE", "/v1/tokens/{token_id:str}", "/v1/tokens/ffffffffffffffff", ADMIN),
    ("POST", "/v1/keys", "/v1/keys", ADMIN),
    ("GET", "/v1/keys", "/v1/keys", EVERYONE),
    ("GET", "/v1/keys/{keyid:str}", f"/v1/keys/{KEYID}", EVERYONE),
    ("POST", "/v1/keys/{keyid:str}/revoke", f"/v1/keys/{KEYID}/revoke", ADMIN),
    (
        "POST",
        "/v1/artifacts/{digest:str}/attestations",
        f"/v1/artifacts/{DIGEST}/attestations",
        SIGNERS,
    ),
    (
        "GET",
        "/v1/artifacts/{digest:str}/attestations",
        f"/v1/artifacts/{DIGEST}/attestations",
        EVERYONE,
    ),
    ("GET", "/v1/log/checkpoint", "/v1/log/checkpoint", None),
    ("GET", "/v1/log/key", "/v1/log/key", None),
    ("GET", "/v1/log/entries", "/v1/log/entries?start=0&end=1", EVERYONE),
    ("GET", "/v1/log/proof/inclusion", "/v1/log/proof/inclusion?index=0&size=1", None),
    ("GET", "/v1/log/proof/consistency", "/v1/log/proof/consistency?from=1&to=1", None),
    ("POST", "/v1/channels/promote", "/v1/channels/promote", GOVERN),
    ("POST", "/v1/channels/rollback", "/v1/channels/rollback", GOVERN),
    ("GET", "/v1/channels", "/v1/channels?name=a", EVERYONE),
    ("POST", "/v1/artifacts/{digest:str}/revoke", f"/v1/artifacts/{DIGEST}/revoke", GOVERN),
    ("POST", "/v1/artifacts/{digest:str}/verify", f"/v1/artifacts/{DIGEST}/verify", REQUESTERS),
    ("GET", "/v1/artifacts/{digest:str}/jobs", f"/v1/artifacts/{DIGEST}/jobs", EVERYONE),
    ("POST", "/v1/jobs/claim", "/v1/jobs/claim", WORKERS),
    ("POST", "/v1/jobs/{job_id:str}/heartbeat", f"/v1/jobs/{JOB}/heartbeat", WORKERS),
    ("POST", "/v1/jobs/{job_id:str}/complete", f"/v1/jobs/{JOB}/complete", WORKERS),
    ("POST", "/v1/jobs/{job_id:str}/fail", f"/v1/jobs/{JOB}/fail", WORKERS),
    ("GET", "/v1/channels/history", "/v1/channels/history?name=a", EVERYONE),
    (
        "GET",
        "/v1/artifacts/{digest:str}/status",
        f"/v1/artifacts/{DIGEST}/status?channel=prod",
        EVERYONE,
    ),
]

# the /v2 operations behind the one catch-all route, from the table that routes them
OCI_PARAMS = {
    "name": "library/app",
    "digest": "sha256:" + "0" * 64,
    "reference": "v1",
    "upload_id": "0" * 32,
}
OCI_CATCH_ALL = "/v2/{path:path}"
MATRIX += [
    (
        route.method,
        route.template,
        route.template.format(**OCI_PARAMS),
        PUBLISH if route.access == "push" else EVERYONE,
    )
    for route in OCI_ROUTES
]
