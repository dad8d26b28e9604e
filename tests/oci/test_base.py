"""``/v2`` as a registry client first meets it: the base check, the login challenge, and
errors in the OCI error body (never problem+json) that clients act on by code."""

from __future__ import annotations

import httpx

from registry.core.roles import Role
from registry.ocierrors import bearer_challenge
from tests.conftest import Api, Deployment
from tests.support.content import digests
from tests.support.oci import oci_error, push_blob


def test_base_check_answers_200_with_a_token(api: Api) -> None:
    r = api.client.get("/v2/", headers=api.auth(Role.READER))
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def test_base_check_challenges_an_anonymous_client_even_with_anonymous_reads(
    deployment: Deployment,
) -> None:
    with deployment.client(RELIQUARY_ANONYMOUS_READS="true") as client:
        r = client.get("/v2/")
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="http://testserver.local/v2/token"')
    assert 'service="reliquary"' in challenge
    assert oci_error(r)["code"] == "UNAUTHORIZED"


def test_a_pull_without_a_token_is_challenged_with_the_scope_it_needs(api: Api) -> None:
    r = api.client.get("/v2/library/app/tags/list")
    assert r.status_code == 401
    assert 'scope="repository:library/app:pull"' in r.headers["www-authenticate"]
    assert oci_error(r)["code"] == "UNAUTHORIZED"
    r = api.client.post("/v2/library/app/blobs/uploads/")
    assert 'scope="repository:library/app:pull,push"' in r.headers["www-authenticate"]


def test_a_reader_may_not_push(api: Api) -> None:
    r = api.client.post("/v2/library/app/blobs/uploads/", headers=api.auth(Role.READER))
    assert r.status_code == 403
    assert oci_error(r)["code"] == "DENIED"


def test_unknown_blob_is_blob_unknown_and_a_bad_digest_is_digest_invalid(api: Api) -> None:
    missing = "sha256:" + "0" * 64
    r = api.client.get(f"/v2/library/app/blobs/{missing}", headers=api.auth(Role.READER))
    assert r.status_code == 404
    assert oci_error(r)["code"] == "BLOB_UNKNOWN"
    r = api.client.head(f"/v2/library/app/blobs/{missing}", headers=api.auth(Role.READER))
    assert r.status_code == 404
    assert r.content == b""
    r = api.client.get("/v2/library/app/blobs/sha256:nothex", headers=api.auth(Role.READER))
    assert r.status_code == 400
    assert oci_error(r)["code"] == "DIGEST_INVALID"


def test_a_name_outside_the_grammar_is_name_invalid(api: Api) -> None:
    r = api.client.get("/v2/Library/App/tags/list", headers=api.auth(Role.READER))
    assert r.status_code == 400
    assert oci_error(r)["code"] == "NAME_INVALID"


def test_unknown_paths_and_methods_answer_in_the_oci_body(api: Api) -> None:
    r = api.client.get("/v2/library/app/nothing-here", headers=api.auth(Role.READER))
    assert r.status_code == 404
    assert oci_error(r)["code"] == "UNSUPPORTED"
    r = api.client.patch("/v2/library/app/manifests/v1", headers=api.auth())
    assert r.status_code == 405
    assert oci_error(r)["code"] == "UNSUPPORTED"
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}


def test_delete_is_refused_as_unsupported(api: Api) -> None:
    digest = "sha256:" + "0" * 64
    for path in (f"/v2/library/app/manifests/{digest}", f"/v2/library/app/blobs/{digest}"):
        r = api.client.delete(path, headers=api.auth())
        assert r.status_code == 405
        assert oci_error(r)["code"] == "UNSUPPORTED"


def test_v1_errors_stay_problem_json(api: Api) -> None:
    r = api.client.get("/v1/blobs/sha256:nothex", headers=api.auth(Role.READER))
    assert r.headers["content-type"] == "application/problem+json"


def test_behind_a_proxy_the_challenge_names_the_public_url(deployment: Deployment) -> None:
    with deployment.client(RELIQUARY_PUBLIC_URL="https://registry.example.org/") as client:
        r = client.get("/v2/library/app/tags/list")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith(
        'Bearer realm="https://registry.example.org/v2/token",service="reliquary"'
    )


def test_a_quote_in_the_host_cannot_end_the_realm() -> None:
    """(The server answers 400 to such a Host before any handler; the challenge holds
    even if a proxy let one through.)"""
    challenge = bearer_challenge('http://evil",x="y', "repository:a:pull")
    assert challenge == (
        'Bearer realm="http://evil,x=y/v2/token",service="reliquary",scope="repository:a:pull"'
    )


def test_a_blob_is_pulled_whole_or_by_range_and_named_by_sha256_only(api: Api) -> None:
    data = bytes(range(256)) * 40
    digest = push_blob(api, "library/app", data)
    reader = api.auth(Role.READER)
    path = f"/v2/library/app/blobs/{digest}"
    r = api.client.get(path, headers=reader)
    assert (r.status_code, r.content) == (200, data)
    assert r.headers["docker-content-digest"] == digest
    r = api.client.head(path, headers=reader)
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", str(len(data)))
    r = api.client.get(path, headers=reader | {"range": "bytes=10-19"})
    assert (r.status_code, r.content) == (206, data[10:20])
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    r = api.client.get(path, headers=reader | {"range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"
    blake3 = "blake3:" + digests(data).blake3.hex
    r = api.client.get(f"/v2/library/app/blobs/{blake3}", headers=reader)
    assert r.status_code == 400
    assert oci_error(r)["code"] == "DIGEST_INVALID"


def test_with_s3_redirects_a_blob_pull_is_sent_to_the_object_store(
    deployment: Deployment,
) -> None:
    """RELIQUARY_S3_REDIRECT holds for /v2 as for /v1 (one blob answer): a 307 with an
    empty body to a presigned URL, only after the token and the repository are checked."""
    if deployment.env["RELIQUARY_STORAGE"] != "s3":
        return  # nothing to redirect to: the setting is refused (tests/test_settings.py)
    data = b"a layer the object store serves"
    token = deployment.token(Role.PUBLISHER)
    auth = {"authorization": f"Bearer {token}"}
    with deployment.client(RELIQUARY_S3_REDIRECT="2m") as client:
        digest = "sha256:" + digests(data).sha256.hex
        r = client.post(
            f"/v2/library/app/blobs/uploads/?digest={digest}", content=data, headers=auth
        )
        assert r.status_code == 201, r.text
        r = client.get(f"/v2/library/app/blobs/{digest}", headers=auth, follow_redirects=False)
        assert (r.status_code, r.content) == (307, b"")
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["cache-control"] == "no-store"
        assert httpx.get(r.headers["location"]).content == data
        assert client.get(f"/v2/library/app/blobs/{digest}").status_code == 401
        r = client.get(f"/v2/library/other/blobs/{digest}", headers=auth)
        assert r.status_code == 404  # another repository does not hold it: no URL either
