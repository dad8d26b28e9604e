"""Logging a registry client in: the token dance of distribution ``spec/auth/token.md``
as skopeo (containers/image) and oras-py do it -- challenge, ``GET /v2/token`` with a
Reliquary token as the Basic password, a scoped bearer token, and the repository's
answer to what the token was (not) granted.

Until push handlers exist, a request that passed its access check is recognised by the
answer of its handler: ``GET .../blobs/<zeros>`` is 404 ``BLOB_UNKNOWN`` (pull granted),
``DELETE .../manifests/<zeros>`` is 405 ``UNSUPPORTED`` (push granted).
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from litestar.testing import TestClient

from registry.core.roles import Role
from tests.conftest import Api, Deployment
from tests.support.access import DIGEST as V1_DIGEST
from tests.support.clock import FakeClock
from tests.support.oci import oci_error

ZEROS = "sha256:" + "0" * 64
PUSH_ROLES = {Role.PUBLISHER, Role.ADMIN}


def basic(password: str, user: str = "skopeo") -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def ask(client: TestClient[Any], headers: dict[str, str], *scopes: str) -> httpx.Response:
    """``GET /v2/token`` as containers/image sends it."""
    params = httpx.QueryParams(
        [("account", "someone"), ("service", "reliquary"), *(("scope", s) for s in scopes)]
    )
    return client.get("/v2/token", params=params, headers=headers)


def token_for(client: TestClient[Any], headers: dict[str, str], *scopes: str) -> str:
    r = ask(client, headers, *scopes)
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def pull(client: TestClient[Any], token: str, name: str = "library/app") -> httpx.Response:
    return client.get(f"/v2/{name}/blobs/{ZEROS}", headers=bearer(token))


def push(client: TestClient[Any], token: str, name: str = "library/app") -> httpx.Response:
    return client.delete(f"/v2/{name}/manifests/{ZEROS}", headers=bearer(token))


def pulled(r: httpx.Response) -> bool:
    """Whether a ``pull`` passed its access check (``assert`` on anything unexpected)."""
    if r.status_code == 404:
        assert oci_error(r)["code"] == "BLOB_UNKNOWN"
        return True
    assert r.status_code in (401, 403), r.text
    return False


def pushed(r: httpx.Response) -> bool:
    if r.status_code == 405:
        assert oci_error(r)["code"] == "UNSUPPORTED"
        return True
    assert r.status_code in (401, 403), r.text
    return False


def challenge(r: httpx.Response) -> dict[str, str]:
    """The parameters of a 401's ``Bearer`` challenge."""
    assert r.status_code == 401, r.text
    value = r.headers["www-authenticate"]
    assert value.startswith("Bearer ")
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def test_basic_login_gives_a_scoped_token_that_pulls(api: Api) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    r = ask(api.client, basic(api.tokens[Role.READER]), "repository:library/app:pull")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    answer = r.json()
    assert set(answer) == {"token", "access_token", "expires_in", "issued_at"}
    assert answer["token"] == answer["access_token"]
    assert answer["token"].startswith("rlqo_")
    assert answer["expires_in"] == 300
    assert answer["issued_at"].endswith("Z")
    issued = datetime.fromisoformat(answer["issued_at"])
    assert before <= issued <= datetime.now(UTC)
    assert pulled(pull(api.client, answer["token"]))


def test_a_bearer_reliquary_token_logs_in_too_and_still_works_directly(api: Api) -> None:
    token = token_for(api.client, api.auth(Role.PUBLISHER), "repository:library/app:pull,push")
    assert pushed(push(api.client, token))
    assert pushed(push(api.client, api.tokens[Role.PUBLISHER]))  # unscoped: its role's rights


@pytest.mark.parametrize("role", list(Role))
def test_the_grant_is_what_was_asked_within_the_role(api: Api, role: Role) -> None:
    token = token_for(api.client, basic(api.tokens[role]), "repository:library/app:pull,push")
    assert pulled(pull(api.client, token))
    r = push(api.client, token)
    if role in PUSH_ROLES:
        assert pushed(r)
    else:  # asking for more than the role is no error: the repository refuses
        assert r.status_code == 403
        assert oci_error(r)["code"] == "DENIED"


def test_a_publisher_asking_to_pull_may_push_that_repository_too(api: Api) -> None:
    """oras-py asks for pull on its first HEAD and reuses that token for the upload: a
    repository named in the request gets everything the role may do there."""
    publisher = token_for(
        api.client, basic(api.tokens[Role.PUBLISHER]), "repository:library/app:pull"
    )
    assert pushed(push(api.client, publisher))
    reader = token_for(api.client, basic(api.tokens[Role.READER]), "repository:library/app:pull")
    r = push(api.client, reader)
    assert r.status_code == 403
    assert oci_error(r)["code"] == "DENIED"


def test_a_token_for_one_repository_does_not_open_another(api: Api) -> None:
    token = token_for(api.client, basic(api.tokens[Role.ADMIN]), "repository:library/a:pull,push")
    assert pulled(pull(api.client, token, "library/a"))
    r = pull(api.client, token, "library/b")
    assert oci_error(r)["code"] == "UNAUTHORIZED"
    assert challenge(r)["scope"] == "repository:library/b:pull"
    assert challenge(r)["error"] == "insufficient_scope"
    assert not pushed(push(api.client, token, "library/a/b"))  # a name below is another


def test_several_scopes_in_one_request(api: Api) -> None:
    token = token_for(
        api.client,
        basic(api.tokens[Role.PUBLISHER]),
        "repository:library/a:pull",
        "repository:library/b:pull,push",
        "registry:catalog:*",
        "unknown:thing:do",  # unknown types are dropped, not refused
        "repository:library/c:delete",  # and unknown actions
    )
    assert pulled(pull(api.client, token, "library/a"))
    assert pushed(push(api.client, token, "library/a"))  # the role's rights where named
    assert pushed(push(api.client, token, "library/b"))
    assert not pulled(pull(api.client, token, "library/c"))  # an unknown action names none
    assert api.client.get("/v2/_catalog", headers=bearer(token)).status_code not in (401, 403)
    # space-separated entries in one parameter count too (the OAuth form)
    token = token_for(
        api.client, basic(api.tokens[Role.READER]), "repository:library/a:pull registry:catalog:*"
    )
    assert pulled(pull(api.client, token, "library/a"))
    assert api.client.get("/v2/_catalog", headers=bearer(token)).status_code not in (401, 403)


def test_the_catalog_needs_its_scope(api: Api) -> None:
    token = token_for(api.client, basic(api.tokens[Role.ADMIN]), "repository:library/a:pull")
    r = api.client.get("/v2/_catalog", headers=bearer(token))
    params = challenge(r)
    assert params["scope"] == "registry:catalog:*"
    assert params["error"] == "insufficient_scope"


def test_a_token_without_scope_logs_in_but_opens_no_repository(api: Api) -> None:
    # docker login: a token for no scope, then the base check
    token = token_for(api.client, basic(api.tokens[Role.READER]))
    assert api.client.get("/v2/", headers=bearer(token)).status_code == 200
    assert challenge(pull(api.client, token))["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    "scope",
    [
        "repository:library/app",
        "repository::pull",
        "repository:library/app:",
        "repository:library/app:pull,,push",
        "Repository:library/app:pull",
        "repository:library app:pull",
        "repository:library/app:pu%ll",
    ],
)
def test_a_malformed_scope_is_refused(api: Api, scope: str) -> None:
    r = ask(api.client, basic(api.tokens[Role.READER]), "repository:library/ok:pull", scope)
    assert r.status_code == 400, r.text
    assert "scope" in oci_error(r)["message"]


def test_too_many_scopes_or_another_service_are_refused(api: Api) -> None:
    scopes = [f"repository:library/app{i}:pull" for i in range(17)]
    r = ask(api.client, basic(api.tokens[Role.READER]), *scopes)
    assert r.status_code == 400
    assert "at most 16" in oci_error(r)["message"]
    r = api.client.get(
        "/v2/token", params={"service": "docker.io"}, headers=basic(api.tokens[Role.READER])
    )
    assert r.status_code == 400
    assert "reliquary" in oci_error(r)["message"]


@pytest.mark.parametrize(
    "headers",
    [
        basic("rlq_" + "0" * 64),  # no such token
        basic("hunter2"),  # not a Reliquary token
        {"authorization": "Basic !!!not-base64"},
        {"authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        bearer("rlq_not-a-real-token"),
        {"authorization": "Digest whatever"},
    ],
)
def test_wrong_credentials_are_unauthorized(api: Api, headers: dict[str, str]) -> None:
    r = ask(api.client, headers, "repository:library/app:pull")
    assert oci_error(r)["code"] == "UNAUTHORIZED"
    assert challenge(r)["realm"] == "http://testserver.local/v2/token"
    r = api.client.get(f"/v2/library/app/blobs/{ZEROS}", headers=headers)
    assert oci_error(r)["code"] == "UNAUTHORIZED"


def test_no_credentials_without_anonymous_reads_is_unauthorized(api: Api) -> None:
    r = ask(api.client, {}, "repository:library/app:pull")
    assert oci_error(r)["code"] == "UNAUTHORIZED"
    params = challenge(r)
    assert params["realm"] == "http://testserver.local/v2/token"
    assert params["service"] == "reliquary"
    assert "password" in oci_error(r)["message"]


def test_anonymous_reads_give_a_pull_only_token(deployment: Deployment) -> None:
    with deployment.client(RELIQUARY_ANONYMOUS_READS="true") as client:
        token = token_for(client, {}, "repository:library/app:pull,push")
        assert pulled(pull(client, token))
        r = push(client, token)
        assert r.status_code == 403
        assert oci_error(r)["code"] == "DENIED"
    with deployment.client() as client:  # anonymous reads off again: the token is void
        r = pull(client, token)
        assert oci_error(r)["code"] == "UNAUTHORIZED"
        assert "anonymous reads are off" in oci_error(r)["message"]


def test_a_scoped_token_expires_after_300_seconds(deployment: Deployment) -> None:
    clock = FakeClock()
    publisher = deployment.token(Role.PUBLISHER)
    with deployment.client(deployment.asgi(clock.now)) as client:
        token = token_for(client, basic(publisher), "repository:library/app:pull")
        clock.advance(299)
        assert pulled(pull(client, token))
        clock.advance(2)
        r = pull(client, token)
        assert oci_error(r)["code"] == "UNAUTHORIZED"
        assert "expired" in oci_error(r)["message"]
        assert challenge(r)["scope"] == "repository:library/app:pull"  # fetch a new one
        assert pulled(pull(client, token_for(client, basic(publisher), challenge(r)["scope"])))


def test_a_scoped_token_dies_with_its_parent(api: Api, deployment: Deployment) -> None:
    issued = deployment.services().tokens.issue(Role.PUBLISHER)
    token = token_for(api.client, basic(issued.token), "repository:library/app:pull,push")
    assert pushed(push(api.client, token))  # the parent is cached now
    r = api.client.delete(f"/v1/tokens/{issued.id}", headers=api.auth(Role.ADMIN))
    assert r.status_code == 204
    r = pull(api.client, token)
    assert oci_error(r)["code"] == "UNAUTHORIZED"
    assert "revoked" in oci_error(r)["message"]
    assert oci_error(ask(api.client, basic(issued.token)))["code"] == "UNAUTHORIZED"


def test_a_revocation_through_another_replica_is_honoured(deployment: Deployment) -> None:
    issued = deployment.services().tokens.issue(Role.READER)
    with deployment.client(RELIQUARY_TOKEN_CACHE_TTL="0s") as client:
        token = token_for(client, basic(issued.token), "repository:library/app:pull")
        assert pulled(pull(client, token))
        deployment.services().tokens.revoke(issued.id)  # another process, another cache
        assert oci_error(pull(client, token))["code"] == "UNAUTHORIZED"


def test_a_parent_that_expires_takes_its_scoped_tokens_along(deployment: Deployment) -> None:
    clock = FakeClock()
    issued = deployment.services(clock.now).tokens.issue(Role.READER, expires_in_seconds=100)
    with deployment.client(deployment.asgi(clock.now)) as client:
        token = token_for(client, basic(issued.token), "repository:library/app:pull")
        assert pulled(pull(client, token))
        clock.advance(101)
        r = pull(client, token)
        assert oci_error(r)["code"] == "UNAUTHORIZED"
        assert f"token {issued.id} expired" in oci_error(r)["message"]


def test_every_replica_accepts_what_another_issued(deployment: Deployment) -> None:
    publisher = deployment.token(Role.PUBLISHER)
    with deployment.client() as one, deployment.client() as other:
        token = token_for(one, basic(publisher), "repository:library/app:pull,push")
        assert pushed(push(other, token))


def test_a_tampered_token_is_refused(api: Api) -> None:
    token = token_for(api.client, basic(api.tokens[Role.READER]), "repository:library/app:pull")
    payload, mac = token.removeprefix("rlqo_").split(".")
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b'"role":"reader"' in claims
    forged = base64.urlsafe_b64encode(claims.replace(b'"reader"', b'"admin"')).rstrip(b"=")
    for bad in (
        f"rlqo_{forged.decode()}.{mac}",
        token[:-2] + ("AA" if token[-2:] != "AA" else "BB"),
    ):
        r = pull(api.client, bad)
        assert oci_error(r)["code"] == "UNAUTHORIZED"
        assert "not one this registry issued" in oci_error(r)["message"]


def test_a_scoped_token_is_not_exchanged_for_another(api: Api) -> None:
    token = token_for(api.client, basic(api.tokens[Role.ADMIN]), "repository:library/a:pull")
    for headers in (bearer(token), basic(token)):
        r = ask(api.client, headers, "repository:library/b:pull,push")
        assert oci_error(r)["code"] == "UNAUTHORIZED"
        assert "cannot be exchanged" in oci_error(r)["message"]


def test_scoped_tokens_and_basic_auth_are_for_v2_only(api: Api) -> None:
    token = token_for(api.client, basic(api.tokens[Role.ADMIN]), "repository:library/app:pull")
    r = api.client.get(f"/v1/blobs/{V1_DIGEST}", headers=bearer(token))
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert "only under /v2" in r.json()["detail"]
    r = api.client.get(f"/v1/blobs/{V1_DIGEST}", headers=basic(api.tokens[Role.ADMIN]))
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


def test_basic_auth_works_directly_on_v2(api: Api) -> None:
    """``curl -u any:<token>``: no token dance, the role's rights."""
    assert api.client.get("/v2/", headers=basic(api.tokens[Role.READER])).status_code == 200
    r = api.client.get(f"/v2/library/app/blobs/{ZEROS}", headers=basic(api.tokens[Role.READER]))
    assert pulled(r)
    r = api.client.delete(
        f"/v2/library/app/manifests/{ZEROS}", headers=basic(api.tokens[Role.PUBLISHER])
    )
    assert pushed(r)
    r = api.client.delete(
        f"/v2/library/app/manifests/{ZEROS}", headers=basic(api.tokens[Role.READER])
    )
    assert r.status_code == 403


def test_a_client_follows_the_challenge_of_a_real_request(api: Api) -> None:
    """What oras-py does: the 401 of the request itself names realm, service and scope."""
    for method, access in (("GET", "pull"), ("DELETE", "pull,push")):
        path = f"/v2/library/app/{'blobs' if method == 'GET' else 'manifests'}/{ZEROS}"
        r = api.client.request(method, path)
        params = challenge(r)
        assert params == {
            "realm": "http://testserver.local/v2/token",
            "service": "reliquary",
            "scope": f"repository:library/app:{access}",
        }
        realm = urlsplit(params["realm"])
        answer = api.client.get(
            realm.path,
            params={"service": params["service"], "scope": params["scope"]},
            headers=basic(api.tokens[Role.PUBLISHER]),
        )
        assert answer.status_code == 200, answer.text
        retried = api.client.request(method, path, headers=bearer(answer.json()["token"]))
        assert (pulled if method == "GET" else pushed)(retried)


def test_tokens_are_dated_by_the_service_clock(deployment: Deployment) -> None:
    clock = FakeClock(ahead_seconds=3600.5)
    reader = deployment.token(Role.READER)
    with deployment.client(deployment.asgi(clock.now)) as client:
        answer = ask(client, basic(reader), "repository:library/app:pull").json()
        issued = datetime.fromisoformat(answer["issued_at"])
        assert abs(issued - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=5)


def test_a_mount_needs_the_pull_scope_on_the_source_repository(api: Api) -> None:
    """A scoped token pushing to one repository cannot learn or copy what another holds
    unless it was granted pull there too: the mount falls back to an upload (202)."""
    data = b"a layer only library/other holds"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    publisher = basic(api.tokens[Role.PUBLISHER])
    other = token_for(api.client, publisher, "repository:library/other:pull,push")
    r = api.client.post(
        f"/v2/library/other/blobs/uploads/?digest={digest}", content=data, headers=bearer(other)
    )
    assert r.status_code == 201, r.text
    mount = f"/v2/library/app/blobs/uploads/?mount={digest}&from=library/other"
    narrow = token_for(api.client, publisher, "repository:library/app:pull,push")
    r = api.client.post(mount, headers=bearer(narrow))
    assert r.status_code == 202, r.text
    assert pulled(api.client.get(f"/v2/library/app/blobs/{digest}", headers=bearer(narrow)))
    both = token_for(
        api.client,
        publisher,
        "repository:library/app:pull,push",
        "repository:library/other:pull",
    )
    r = api.client.post(mount, headers=bearer(both))
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    r = api.client.get(f"/v2/library/app/blobs/{digest}", headers=bearer(narrow))
    assert r.status_code == 200
    assert r.content == data
