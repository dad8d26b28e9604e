"""Hot immutable reads served from memory answer exactly as the full app does."""

from __future__ import annotations

import os
from typing import Any

import httpx

from registry.core.roles import Role
from tests.conftest import Api, Deployment
from tests.support.api import publish
from tests.support.content import digests
from tests.support.oci import push_image, sha256

VOLATILE = {"date", "server"}


def _same(cold: Any, warm: Any) -> None:
    assert warm.status_code == cold.status_code
    assert warm.content == cold.content
    strip = lambda r: {k: v for k, v in r.headers.items() if k not in VOLATILE}  # noqa: E731
    assert strip(warm) == strip(cold)


def test_head_blob_and_manifest_get_from_memory_match_the_app(
    api: Api, deployment: Deployment
) -> None:
    fast = api.app
    data = os.urandom(70_000)
    d = digests(data)
    raw = publish(api, "acme/fast", "v1", {"w.bin": data})
    reader = api.auth(Role.READER)

    before = fast.answered
    cold = api.client.head(f"/v1/blobs/{d.sha256}", headers=reader)
    warm = api.client.head(f"/v1/blobs/{d.sha256}", headers=reader)
    assert fast.answered == before + 1
    _same(cold, warm)

    # the pushing app cached the manifest it stored; another app has to read it
    ref = digests(raw).blake3
    other = deployment.asgi()
    with deployment.client(other) as fresh:
        cold = fresh.get(f"/v1/artifacts/{ref}", headers=reader)
    assert other.answered == 0
    warm = api.client.get(f"/v1/artifacts/{ref}", headers=reader)
    assert fast.answered == before + 2
    _same(cold, warm)
    assert warm.content == raw
    etag = {"if-none-match": warm.headers["etag"]}
    not_modified = api.client.get(f"/v1/artifacts/{ref}", headers={**reader, **etag})
    assert not_modified.status_code == 304
    assert fast.answered == before + 3


def test_the_fast_path_never_skips_authentication(api: Api) -> None:
    fast = api.app
    data = b"guarded"
    d = digests(data)
    api.client.put(f"/v1/blobs/{d.blake3}", content=data, headers=api.auth())
    api.client.head(f"/v1/blobs/{d.blake3}", headers=api.auth(Role.READER))  # warm the caches
    before = fast.answered
    assert api.client.head(f"/v1/blobs/{d.blake3}").status_code == 401
    bogus = {"authorization": "Bearer rlq_bogus"}
    assert api.client.head(f"/v1/blobs/{d.blake3}", headers=bogus).status_code == 401
    issued = api.client.post("/v1/tokens", json={"role": "reader"}, headers=api.auth(Role.ADMIN))
    token = {"authorization": f"Bearer {issued.json()['token']}"}
    assert api.client.head(f"/v1/blobs/{d.blake3}", headers=token).status_code == 200
    assert api.client.head(f"/v1/blobs/{d.blake3}", headers=token).status_code == 200
    api.client.delete(f"/v1/tokens/{issued.json()['id']}", headers=api.auth(Role.ADMIN))
    assert api.client.head(f"/v1/blobs/{d.blake3}", headers=token).status_code == 401
    assert fast.answered == before + 1  # only the valid token's second HEAD came from memory


def _login(api: Api, *scopes: str) -> dict[str, str]:
    """A scoped /v2 token for a reader, as skopeo fetches it, as a header."""
    params = [("service", "reliquary"), *(("scope", s) for s in scopes)]
    basic = httpx.BasicAuth("skopeo", api.tokens[Role.READER])
    r = api.client.get("/v2/token", params=params, auth=basic)
    assert r.status_code == 200, r.text
    return {"authorization": f"Bearer {r.json()['token']}"}


def test_oci_manifest_and_blob_heads_from_memory_match_the_app(
    api: Api, deployment: Deployment
) -> None:
    fast = api.app
    raw = push_image(api, "library/fast", "v1")
    digest = sha256(raw)
    layer = sha256(b"layer of library/fast ")
    reader = api.auth(Role.READER)
    scoped = _login(api, "repository:library/fast:pull")
    for method, path in (
        ("HEAD", "/v2/library/fast/manifests/v1"),
        ("GET", "/v2/library/fast/manifests/v1"),
        ("GET", f"/v2/library/fast/manifests/{digest}"),
        ("HEAD", f"/v2/library/fast/blobs/{layer}"),
    ):
        for headers in (reader, scoped):
            other = deployment.asgi()  # nothing cached: its answer comes from the app
            with deployment.client(other) as fresh:
                cold = fresh.request(method, path, headers=headers)
            assert cold.status_code == 200, (path, cold.text)
            assert other.answered == 0
            api.client.request(method, path, headers=headers)  # warms this app's caches
            before = fast.answered
            warm = api.client.request(method, path, headers=headers)
            assert fast.answered == before + 1, (method, path)
            _same(cold, warm)
    warm = api.client.get("/v2/library/fast/manifests/v1", headers=scoped)
    assert warm.content == raw
    assert warm.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"


def test_the_oci_fast_path_honours_the_scope_of_a_token(api: Api) -> None:
    fast = api.app
    push_image(api, "library/fast", "v1")
    path = "/v2/library/fast/manifests/v1"
    assert api.client.head(path, headers=api.auth(Role.READER)).status_code == 200  # cached
    before = fast.answered
    elsewhere = _login(api, "repository:library/other:pull")
    r = api.client.head(path, headers=elsewhere)
    assert r.status_code == 401
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert api.client.head(path).status_code == 401
    assert (
        api.client.head(path, headers={"authorization": "Bearer rlqo_forged.x"}).status_code == 401
    )
    assert fast.answered == before
