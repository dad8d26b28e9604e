"""Resumable uploads: a multi-GB push survives interruptions and never leaks partial blobs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from registry.core.roles import Role
from registry.db.models import UploadRow
from tests.conftest import Api, Deployment
from tests.support.content import digests


def start(api: Api, role: Role = Role.PUBLISHER) -> str:
    r = api.client.post("/v1/uploads", headers=api.auth(role))
    assert r.status_code == 201
    assert r.headers["upload-offset"] == "0"
    location: str = r.headers["location"]
    assert location == f"/v1/uploads/{r.json()['id']}"
    return location


def patch(api: Api, url: str, offset: int, chunk: bytes, role: Role = Role.PUBLISHER) -> object:
    return api.client.patch(
        url, content=chunk, headers={**api.auth(role), "upload-offset": str(offset)}
    )


def test_chunked_upload_resumes_from_the_servers_offset(api: Api) -> None:
    data = os.urandom(6 * 1024 * 1024 + 3)
    d = digests(data)
    url = start(api)
    assert patch(api, url, 0, data[:2_000_000]).status_code == 204  # type: ignore[attr-defined]
    # the client "crashes" here; a new client asks where to resume
    head = api.client.head(url, headers=api.auth())
    assert head.status_code == 200
    offset = int(head.headers["upload-offset"])
    assert offset == 2_000_000
    for start_at in range(offset, len(data), 3_000_000):
        r = patch(api, url, start_at, data[start_at : start_at + 3_000_000])
        assert r.status_code == 204  # type: ignore[attr-defined]
        assert int(r.headers["upload-offset"]) == min(len(data), start_at + 3_000_000)  # type: ignore[attr-defined]
    # nothing is visible before commit
    assert api.client.head(f"/v1/blobs/{d.blake3}", headers=api.auth()).status_code == 404
    r = api.client.put(f"{url}?digest={d.sha256}", headers=api.auth())
    assert r.status_code == 201
    assert r.json() == {"blake3": str(d.blake3), "sha256": str(d.sha256), "size_bytes": len(data)}
    got = api.client.get(f"/v1/blobs/{d.blake3}", headers=api.auth())
    assert got.content == data
    # the session is gone once committed
    assert api.client.head(url, headers=api.auth()).status_code == 404


def test_chunk_at_the_wrong_offset_is_refused_with_the_current_offset(api: Api) -> None:
    url = start(api)
    assert patch(api, url, 0, b"a" * 100).status_code == 204  # type: ignore[attr-defined]
    for wrong in (0, 50, 101):
        r = patch(api, url, wrong, b"b" * 10)
        assert r.status_code == 409  # type: ignore[attr-defined]
        body = r.json()  # type: ignore[attr-defined]
        assert body["type"].endswith("/upload-offset-mismatch")
        assert body["upload_offset"] == 100
    r = api.client.patch(url, content=b"x", headers=api.auth())
    assert r.status_code == 400
    assert "Upload-Offset" in r.json()["detail"]


def test_commit_with_the_wrong_digest_publishes_nothing(api: Api) -> None:
    data = b"chunked bytes" * 1000
    url = start(api)
    patch(api, url, 0, data)
    wrong = digests(b"something else").blake3
    r = api.client.put(f"{url}?digest={wrong}", headers=api.auth())
    assert r.status_code == 400
    assert r.json()["type"].endswith("/digest-mismatch")
    for ref in (wrong, digests(data).blake3):
        assert api.client.head(f"/v1/blobs/{ref}", headers=api.auth()).status_code == 404
    # the session survives a bad commit; the client can commit correctly
    r = api.client.put(f"{url}?digest={digests(data).blake3}", headers=api.auth())
    assert r.status_code == 201


def test_commit_needs_a_digest_and_no_body(api: Api) -> None:
    url = start(api)
    patch(api, url, 0, b"abc")
    assert api.client.put(url, headers=api.auth()).status_code == 400
    r = api.client.put(f"{url}?digest=blake3:nothex", headers=api.auth())
    assert r.json()["type"].endswith("/invalid-digest")
    r = api.client.put(
        f"{url}?digest={digests(b'abcdef').blake3}", content=b"def", headers=api.auth()
    )
    assert r.status_code == 400
    assert "PATCH" in r.json()["detail"]


def test_abort_removes_the_session(api: Api) -> None:
    url = start(api)
    patch(api, url, 0, b"partial")
    assert api.client.delete(url, headers=api.auth()).status_code == 204
    assert api.client.head(url, headers=api.auth()).status_code == 404
    r = patch(api, url, 7, b"more")
    assert r.status_code == 404  # type: ignore[attr-defined]
    assert r.json()["type"].endswith("/upload-not-found")  # type: ignore[attr-defined]
    assert api.client.delete(url, headers=api.auth()).status_code == 404


def test_another_publishers_session_is_invisible(api: Api, deployment: Deployment) -> None:
    url = start(api)
    other = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    assert api.client.head(url, headers=other).status_code == 404
    assert (
        api.client.patch(url, content=b"x", headers={**other, "upload-offset": "0"}).status_code
        == 404
    )
    assert api.client.head(url, headers=api.auth(Role.ADMIN)).status_code == 200


def test_chunks_over_the_limit_are_refused(deployment: Deployment) -> None:
    token = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    with deployment.client(RELIQUARY_MAX_CHUNK_SIZE="1KiB", RELIQUARY_MAX_BLOB_SIZE="3KiB") as c:
        url = c.post("/v1/uploads", headers=token).headers["location"]
        r = c.patch(url, content=b"x" * 1025, headers={**token, "upload-offset": "0"})
        assert r.status_code == 413
        for offset in (0, 1024, 2048):
            r = c.patch(url, content=b"x" * 1024, headers={**token, "upload-offset": str(offset)})
            assert r.status_code == 204
        r = c.patch(url, content=b"x", headers={**token, "upload-offset": "3072"})
        assert r.status_code == 413
        assert c.head(url, headers=token).headers["upload-offset"] == "3072"


def test_stale_sessions_expire_and_their_parts_are_removed(deployment: Deployment) -> None:
    token = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    services = deployment.services()
    with deployment.client() as c:
        url = c.post("/v1/uploads", headers=token).headers["location"]
        upload_id = url.rsplit("/", 1)[1]
        c.patch(url, content=b"abandoned", headers={**token, "upload-offset": "0"})
        assert services.store.list_upload_ids() == [upload_id]
        with deployment.engine.begin() as conn:
            conn.execute(
                update(UploadRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert c.head(url, headers=token).status_code == 404
        assert services.uploads.expire() == 1
        assert services.store.list_upload_ids() == []
