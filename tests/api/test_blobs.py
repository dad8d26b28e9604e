"""A training job uploading blobs and a validator fetching them, over the HTTP API."""

from __future__ import annotations

import os

from registry.core.roles import Role
from tests.conftest import Api, Deployment
from tests.support.content import digests

PROBLEM = "application/problem+json"


def put_blob(api: Api, data: bytes, claimed: str | None = None) -> object:
    d = digests(data)
    return api.client.put(f"/v1/blobs/{claimed or d.blake3}", content=data, headers=api.auth())


def test_push_then_fetch_by_either_digest(api: Api) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    d = digests(data)
    r = api.client.put(f"/v1/blobs/{d.blake3}", content=data, headers=api.auth())
    assert r.status_code == 201
    assert r.json() == {"blake3": str(d.blake3), "sha256": str(d.sha256), "size_bytes": len(data)}
    assert r.headers["location"] == f"/v1/blobs/{d.blake3}"
    for ref in (d.blake3, d.sha256):
        got = api.client.get(f"/v1/blobs/{ref}", headers=api.auth(Role.READER))
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["etag"] == f'"{d.blake3}"'
        assert got.headers["cache-control"] == "private, max-age=31536000, immutable"
        assert got.headers["reliquary-sha256"] == str(d.sha256)


def test_push_by_sha256_records_both_digests(api: Api) -> None:
    data = b"sha256-first content"
    d = digests(data)
    r = api.client.put(f"/v1/blobs/{d.sha256}", content=data, headers=api.auth())
    assert r.status_code == 201
    assert r.json()["blake3"] == str(d.blake3)
    head = api.client.head(f"/v1/blobs/{d.blake3}", headers=api.auth(Role.READER))
    assert head.status_code == 200


def test_same_blob_twice_is_idempotent(api: Api) -> None:
    data = b"x" * 100_000
    assert put_blob(api, data).status_code == 201  # type: ignore[attr-defined]
    again = put_blob(api, data)
    assert again.status_code == 200  # type: ignore[attr-defined]
    assert again.json()["size_bytes"] == len(data)  # type: ignore[attr-defined]


def test_wrong_bytes_for_a_stored_blob_are_still_refused(api: Api) -> None:
    data = b"the stored bytes"
    d = digests(data)
    assert put_blob(api, data).status_code == 201  # type: ignore[attr-defined]
    r = api.client.put(f"/v1/blobs/{d.blake3}", content=b"other bytes", headers=api.auth())
    assert r.status_code == 400
    assert r.json()["type"].endswith("/digest-mismatch")
    assert api.client.get(f"/v1/blobs/{d.blake3}", headers=api.auth()).content == data


def test_head_answers_size_and_digests_without_a_body(api: Api) -> None:
    data = os.urandom(123_456)
    d = digests(data)
    put_blob(api, data)
    r = api.client.head(f"/v1/blobs/{d.sha256}", headers=api.auth(Role.READER))
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["etag"] == f'"{d.blake3}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.content == b""
    missing = api.client.head(f"/v1/blobs/blake3:{'0' * 64}", headers=api.auth(Role.READER))
    assert missing.status_code == 404


def test_ranges_and_conditional_requests(api: Api) -> None:
    data = os.urandom(2 * 1024 * 1024 + 5)
    d = digests(data)
    put_blob(api, data)
    url, auth = f"/v1/blobs/{d.blake3}", api.auth(Role.READER)
    cases = {
        "bytes=0-0": data[:1],
        "bytes=1048570-1048590": data[1048570:1048591],
        "bytes=2097150-": data[2097150:],
        "bytes=-10": data[-10:],
        "bytes=5-99999999": data[5:],
    }
    for header, expected in cases.items():
        r = api.client.get(url, headers={**auth, "range": header})
        assert r.status_code == 206, header
        assert r.content == expected, header
        start = len(data) - len(expected)
        assert r.headers["content-range"].endswith(f"/{len(data)}")
        assert int(r.headers["content-length"]) == len(expected)
        if header.startswith("bytes=-"):
            assert r.headers["content-range"].startswith(f"bytes {start}-")
    for bad in (f"bytes={len(data)}-", "bytes=9-3", "items=0-1", "bytes=0-1,5-6", "bytes=-0"):
        r = api.client.get(url, headers={**auth, "range": bad})
        assert r.status_code == 416, bad
        assert r.headers["content-range"] == f"bytes */{len(data)}"
        assert r.headers["content-type"] == PROBLEM
    r = api.client.get(url, headers={**auth, "if-none-match": f'"{d.blake3}"'})
    assert r.status_code == 304
    assert r.content == b""


def test_digest_mismatch_stores_nothing_and_says_what_arrived(api: Api) -> None:
    data, other = b"the real bytes", b"what the client claimed"
    claimed = digests(other).blake3
    r = api.client.put(f"/v1/blobs/{claimed}", content=data, headers=api.auth())
    assert r.status_code == 400
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["type"] == "https://reliquary.dev/problems/digest-mismatch"
    assert problem["received_blake3"] == str(digests(data).blake3)
    assert problem["claimed"] == str(claimed)
    for ref in (claimed, digests(data).blake3):
        assert api.client.head(f"/v1/blobs/{ref}", headers=api.auth()).status_code == 404


def test_malformed_digest_in_path(api: Api) -> None:
    for ref in ("blake3:xyz", "md5:" + "0" * 32, "blake3:" + "A" * 64, "..%2F..%2Fetc%2Fpasswd"):
        r = api.client.put(f"/v1/blobs/{ref}", content=b"x", headers=api.auth())
        assert r.status_code in (400, 404), ref
        assert r.headers["content-type"] == PROBLEM
        if r.status_code == 400:
            assert r.json()["type"].endswith("/invalid-digest")


def test_oversized_blob_refused_while_streaming(deployment: Deployment) -> None:
    token = deployment.token(Role.PUBLISHER)
    with deployment.client(RELIQUARY_MAX_BLOB_SIZE="64KiB") as client:
        data = os.urandom(64 * 1024 + 1)
        d = digests(data)
        r = client.put(
            f"/v1/blobs/{d.blake3}", content=data, headers={"authorization": f"Bearer {token}"}
        )
        assert r.status_code == 413
        assert r.json()["type"].endswith("/body-too-large")
        assert r.json()["limit_bytes"] == 64 * 1024

        def chunks() -> object:
            yield data[:40_000]
            yield data[40_000:]

        # no Content-Length: the limit is enforced on the bytes as they arrive
        r = client.put(
            f"/v1/blobs/{d.blake3}",
            content=chunks(),  # type: ignore[arg-type]
            headers={"authorization": f"Bearer {token}"},
        )
        assert r.status_code == 413
        head = client.head(f"/v1/blobs/{d.blake3}", headers={"authorization": f"Bearer {token}"})
        assert head.status_code == 404


def test_empty_blob_is_a_blob(api: Api) -> None:
    d = digests(b"")
    r = api.client.put(f"/v1/blobs/{d.blake3}", content=b"", headers=api.auth())
    assert r.status_code == 201
    got = api.client.get(f"/v1/blobs/{d.sha256}", headers=api.auth())
    assert got.status_code == 200
    assert got.content == b""
