"""Who may call what: the whole role x endpoint matrix, token lifecycle, anonymous reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from registry.core.roles import Role
from registry.db.models import TokenRow
from registry.domain.oci.routes import OCI_ROUTES
from tests.conftest import Api, Deployment
from tests.support.access import DIGEST, MATRIX, OCI_CATCH_ALL
from tests.support.clock import FakeClock


def call(api: Api, method: str, path: str, headers: dict[str, str]) -> int:
    body = b'{"role": "reader"}' if path == "/v1/tokens" and method == "POST" else b"x"
    if method in ("HEAD", "GET", "DELETE"):
        body = b""
    extra = {"upload-offset": "0"} if method == "PATCH" else {}
    return api.client.request(method, path, content=body, headers={**headers, **extra}).status_code


def test_the_matrix_covers_every_route(api: Api) -> None:
    app = api.app.app  # the Litestar app behind the fast path
    routes = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method != "OPTIONS" and route.path != OCI_CATCH_ALL
    }
    routes |= {(r.method, r.template) for r in OCI_ROUTES}
    listed = {(m, t) for m, t, _, _ in MATRIX}
    assert routes == listed, "add new endpoints to MATRIX with the roles they admit"


@pytest.mark.parametrize(("method", "template", "path", "allowed"), MATRIX)
def test_role_matrix(
    api: Api, method: str, template: str, path: str, allowed: frozenset[Role] | None
) -> None:
    if allowed is None:  # public: answers without a token (400 for a proof the log lacks)
        expected = (404,) if template == "/schema/{path:str}" else (200, 400)
        assert call(api, method, path, {}) in expected
        return
    assert call(api, method, path, {}) == 401
    assert call(api, method, path, {"authorization": "Bearer rlq_not-a-real-token"}) == 401
    assert call(api, method, path, {"authorization": "Basic dXNlcjpwYXNz"}) == 401
    for role in Role:
        status = call(api, method, path, api.auth(role))
        if role in allowed:
            assert status not in (401, 403), (role, status)
        else:
            assert status == 403, (role, status)


def test_errors_say_what_to_do(api: Api) -> None:
    r = api.client.put(f"/v1/blobs/{DIGEST}", content=b"x", headers=api.auth(Role.READER))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["allowed_roles"] == ["admin", "publisher"]
    r = api.client.get(f"/v1/blobs/{DIGEST}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in r.json()["detail"]


def test_expired_and_revoked_tokens_stop_working(api: Api, deployment: Deployment) -> None:
    clock = FakeClock()
    expiring = deployment.services(clock.now).tokens.issue(Role.READER, expires_in_seconds=1)
    with deployment.client(deployment.asgi(clock.now)) as client:
        headers = {"authorization": f"Bearer {expiring.token}"}
        assert client.get("/v1/artifacts", headers=headers).status_code == 200  # now cached
        clock.advance(1.1)
        r = client.get("/v1/artifacts", headers=headers)
        assert r.status_code == 401
        assert "expired" in r.json()["detail"]
    stale = deployment.services().tokens.issue(Role.READER, expires_in_seconds=3600)
    with deployment.engine.begin() as conn:  # expired in the database, never seen by the API
        conn.execute(
            update(TokenRow)
            .where(TokenRow.id == stale.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = api.client.get("/v1/artifacts", headers={"authorization": f"Bearer {stale.token}"})
    assert r.status_code == 401

    issued = api.client.post(
        "/v1/tokens", json={"role": "publisher", "description": "ci"}, headers=api.auth(Role.ADMIN)
    )
    assert issued.status_code == 201
    token = issued.json()
    assert token["token"].startswith("rlq_")
    bearer = {"authorization": f"Bearer {token['token']}"}
    assert api.client.get("/v1/artifacts", headers=bearer).status_code == 200
    listed = api.client.get("/v1/tokens", headers=api.auth(Role.ADMIN)).json()
    assert token["id"] in {t["id"] for t in listed}
    assert all("token" not in t for t in listed)  # secrets are shown once, never listed
    r = api.client.delete(f"/v1/tokens/{token['id']}", headers=api.auth(Role.ADMIN))
    assert r.status_code == 204
    r = api.client.get("/v1/artifacts", headers=bearer)
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]
    r = api.client.delete("/v1/tokens/ffffffffffffffff", headers=api.auth(Role.ADMIN))
    assert r.status_code == 404


def test_token_requests_are_validated(api: Api) -> None:
    admin = api.auth(Role.ADMIN)
    for body in (
        {"role": "root"},
        {"role": "reader", "expires_in": "soon"},
        {"role": "reader", "x": 1},
    ):
        r = api.client.post("/v1/tokens", json=body, headers=admin)
        assert r.status_code == 400, body
        assert r.headers["content-type"] == "application/problem+json"


def test_anonymous_reads_when_enabled(deployment: Deployment) -> None:
    publisher = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    with deployment.client(RELIQUARY_ANONYMOUS_READS="true") as client:
        assert client.get("/v1/artifacts").status_code == 200
        assert client.head(f"/v1/blobs/{DIGEST}").status_code == 404
        assert client.put(f"/v1/blobs/{DIGEST}", content=b"x").status_code == 401
        assert client.post("/v1/uploads").status_code == 401
        assert client.put(f"/v1/blobs/{DIGEST}", content=b"x", headers=publisher).status_code == 400
    with deployment.client() as client:  # off by default
        assert client.get("/v1/artifacts").status_code == 401
