"""Pushing blobs over ``/v2`` as registry clients do (distribution-spec v1.1 "Pushing
blobs", "Pushing a blob in chunks", "Mounting a blob"), ported from the conformance
suite's push workflow, plus the clients' own habits: skopeo's one whole-layer PATCH,
oras-py's whole blob in the closing PUT."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import anyio
import httpx
import pytest
from sqlalchemy import select, update

from registry.core.digest import Digest
from registry.core.roles import Role
from registry.db.engine import make_session_factory
from registry.db.models import UploadPartRow, UploadRow
from registry.domain.blobs.services import BlobService
from registry.domain.blobs.uploads import UploadService
from registry.errors import DigestMismatchError
from registry.metrics import Metrics
from registry.storage import BlobStore
from tests.conftest import Api, Deployment
from tests.support.content import digests
from tests.support.oci import oci_error

NAME = "library/app"
OTHER = "team/other"


def uploads(name: str = NAME) -> str:
    return f"/v2/{name}/blobs/uploads/"


def sha(data: bytes) -> str:
    return str(digests(data).sha256)


def start(api: Api, name: str = NAME, role: Role = Role.PUBLISHER) -> str:
    """A new session's location, checking the 202 answer's headers."""
    r = api.client.post(uploads(name), headers=api.auth(role))
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    upload_id = r.headers["docker-upload-uuid"]
    assert location == f"/v2/{name}/blobs/uploads/{upload_id}"
    assert r.headers["range"] == "0-0"
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    return location


def patch(
    api: Api, location: str, chunk: bytes, content_range: str | None = None
) -> httpx.Response:
    headers = {**api.auth(), "content-type": "application/octet-stream"}
    if content_range is not None:
        headers["content-range"] = content_range
    return api.client.patch(location, content=chunk, headers=headers)


def put(api: Api, location: str, digest: str, body: bytes = b"", **headers: str) -> httpx.Response:
    return api.client.put(
        location, params={"digest": digest}, content=body, headers={**api.auth(), **headers}
    )


def assert_stored(api: Api, r: httpx.Response, data: bytes, name: str = NAME) -> None:
    """A 201 naming the blob, which ``name`` then serves byte for byte."""
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v2/{name}/blobs/{sha(data)}"
    assert r.headers["docker-content-digest"] == sha(data)
    got = api.client.get(r.headers["location"], headers=api.auth(Role.READER))
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["docker-content-digest"] == sha(data)


def held(api: Api, data: bytes, name: str = NAME) -> int:
    """The status of HEAD on the blob in ``name``."""
    return api.client.head(
        f"/v2/{name}/blobs/{sha(data)}", headers=api.auth(Role.READER)
    ).status_code


# -- monolithic --------------------------------------------------------------------------
def test_a_blob_in_one_post_is_stored_and_served_byte_for_byte(api: Api) -> None:
    data = os.urandom(70_000)
    assert held(api, data) == 404
    r = api.client.post(
        uploads(),
        params={"digest": sha(data)},
        content=data,
        headers={**api.auth(), "content-type": "application/octet-stream"},
    )
    assert_stored(api, r, data)
    assert held(api, data) == 200
    assert held(api, data, OTHER) == 404  # held per repository


def test_post_with_a_body_that_does_not_hash_stores_nothing(api: Api) -> None:
    data, other = b"layer bytes" * 100, b"something else"
    r = api.client.post(uploads(), params={"digest": sha(other)}, content=data, headers=api.auth())
    assert r.status_code == 400
    assert oci_error(r)["code"] == "DIGEST_INVALID"
    assert held(api, data) == 404 and held(api, other) == 404
    assert (
        api.client.head(f"/v1/blobs/{digests(data).blake3}", headers=api.auth()).status_code == 404
    )


def test_digests_other_than_sha256_or_malformed_are_digest_invalid(api: Api) -> None:
    data = b"config"
    for digest in (str(digests(data).blake3), "sha256:nothex", "md5:abc", "sha512:" + "0" * 128):
        r = api.client.post(uploads(), params={"digest": digest}, content=data, headers=api.auth())
        assert r.status_code == 400, digest
        assert oci_error(r)["code"] == "DIGEST_INVALID"
    location = start(api)
    r = put(api, location, str(digests(data).blake3), data)
    assert r.status_code == 400
    assert oci_error(r)["code"] == "DIGEST_INVALID"
    r = api.client.put(location, content=data, headers=api.auth())  # no digest at all
    assert r.status_code == 400
    assert oci_error(r)["code"] == "DIGEST_INVALID"
    assert held(api, data) == 404


def test_post_then_put_with_the_whole_blob(api: Api) -> None:
    """oras-py's non-chunked upload: the whole blob in the closing PUT."""
    data = os.urandom(300_000)
    location = start(api)
    r = put(api, location, sha(data), data, **{"content-type": "application/octet-stream"})
    assert_stored(api, r, data)
    # the session is over
    r = api.client.get(location, headers=api.auth())
    assert r.status_code == 404
    assert oci_error(r)["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_the_empty_blob_is_pushed_like_any_other(api: Api) -> None:
    location = start(api)
    assert_stored(api, put(api, location, sha(b"")), b"")
    assert held(api, b"", OTHER) == 404
    r = api.client.post(uploads(OTHER), params={"digest": sha(b"")}, headers=api.auth())
    assert_stored(api, r, b"", OTHER)


# -- streamed ----------------------------------------------------------------------------
def test_post_patch_put_streams_a_whole_layer_in_one_patch(api: Api) -> None:
    """skopeo's PutBlob: POST, one PATCH with the whole layer, PUT without a body."""
    data = os.urandom(9 * 1024 * 1024 + 7)  # several MiB, more than one receive batch
    location = start(api)
    r = api.client.patch(
        location,
        content=data,
        headers={
            **api.auth(),
            "content-type": "application/octet-stream",
            "content-length": str(len(data)),
        },
    )
    assert r.status_code == 202, r.text
    assert r.headers["location"] == location
    assert r.headers["range"] == f"0-{len(data) - 1}"
    assert held(api, data) == 404  # nothing is visible before the digest is proven
    assert_stored(api, put(api, location, sha(data)), data)


def test_a_streamed_patch_appends_wherever_the_session_is(api: Api) -> None:
    data = os.urandom(5000)
    location = start(api)
    for piece in (data[:1000], data[1000:1000], data[1000:]):
        r = patch(api, location, piece)
        assert r.status_code == 202
    assert r.headers["range"] == "0-4999"
    assert_stored(api, put(api, location, sha(data)), data)


def test_a_streamed_patch_may_exceed_the_v1_chunk_limit(deployment: Deployment) -> None:
    data = os.urandom(3000)
    tokens = deployment.token(Role.PUBLISHER)
    headers = {"authorization": f"Bearer {tokens}"}
    with deployment.client(RELIQUARY_MAX_CHUNK_SIZE="1KiB", RELIQUARY_MAX_BLOB_SIZE="4KiB") as c:
        r = c.post(uploads(), headers=headers)
        location = r.headers["location"]
        r = c.patch(location, content=data, headers=headers)
        assert r.status_code == 202, r.text
        r = c.patch(location, content=data, headers=headers)  # 6000 bytes: past the blob limit
        assert r.status_code == 413
        assert oci_error(r)["code"] == "SIZE_INVALID"
        r = c.get(location, headers=headers)
        assert r.headers["range"] == "0-2999"  # the refused chunk changed nothing
        r = c.put(location, params={"digest": sha(data * 2)}, content=data, headers=headers)
        assert r.status_code == 413  # a final chunk past the blob limit too
        r = c.put(location, params={"digest": sha(data)}, headers=headers)
        assert r.status_code == 201


# -- chunked -----------------------------------------------------------------------------
def test_chunks_in_order_then_put(api: Api) -> None:
    data = os.urandom(10_000)
    first, second = data[:4000], data[4000:]
    location = start(api)
    r = patch(api, location, first, "0-3999")
    assert r.status_code == 202
    assert r.headers["range"] == "0-3999"
    r = patch(api, r.headers["location"], second, "4000-9999")
    assert r.status_code == 202
    assert r.headers["range"] == "0-9999"
    assert_stored(api, put(api, r.headers["location"], sha(data), **{"content-length": "0"}), data)


def test_the_final_chunk_may_come_with_the_put(api: Api) -> None:
    data = os.urandom(10_000)
    location = start(api)
    assert patch(api, location, data[:6000], "0-5999").status_code == 202
    r = put(api, location, sha(data), data[6000:], **{"content-range": "6000-9999"})
    assert_stored(api, r, data)


def test_a_final_chunk_out_of_order_is_416(api: Api) -> None:
    data = os.urandom(10_000)
    location = start(api)
    assert patch(api, location, data[:6000], "0-5999").status_code == 202
    r = put(api, location, sha(data), data[5000:], **{"content-range": "5000-9999"})
    assert r.status_code == 416
    assert r.headers["range"] == "0-5999"
    assert held(api, data) == 404


def test_a_chunk_out_of_order_is_416_with_the_sessions_range(api: Api) -> None:
    data = os.urandom(10_000)
    location = start(api)
    r = patch(api, location, data[4000:], "4000-9999")
    assert r.status_code == 416
    assert oci_error(r)["code"] == "BLOB_UPLOAD_INVALID"
    assert r.headers["range"] == "0-0"
    assert api.client.get(location, headers=api.auth()).headers["range"] == "0-0"


def test_a_retried_chunk_is_416_and_the_session_goes_on(api: Api) -> None:
    data = os.urandom(10_000)
    location = start(api)
    assert patch(api, location, data[:4000], "0-3999").status_code == 202
    r = patch(api, location, data[:4000], "0-3999")
    assert r.status_code == 416
    assert oci_error(r)["code"] == "BLOB_UPLOAD_INVALID"
    assert r.headers["range"] == "0-3999"
    # the conformance suite's "GET on stale blob upload", then the next chunk
    r = api.client.get(location, headers=api.auth())
    assert r.status_code == 204
    assert r.headers["location"] == location
    assert r.headers["range"] == "0-3999"
    assert r.headers["docker-upload-uuid"] == location.rsplit("/", 1)[1]
    assert patch(api, location, data[4000:], "4000-9999").status_code == 202
    assert_stored(api, put(api, location, sha(data)), data)


def test_a_content_range_that_disagrees_with_the_body_changes_nothing(api: Api) -> None:
    data = os.urandom(1000)
    location = start(api)
    for content_range in ("0-499", "bytes 0-999", "0-999/1000", "999-0", "x-y"):
        r = patch(api, location, data, content_range)
        assert r.status_code == 400, content_range
        assert oci_error(r)["code"] == "BLOB_UPLOAD_INVALID"
    # a chunked body longer or shorter than its range (no Content-Length to check first)
    for body in (data + b"!", data[:-1]):
        r = api.client.patch(
            location,
            content=iter([body]),
            headers={**api.auth(), "content-range": "0-999"},
        )
        assert r.status_code == 400
    assert api.client.get(location, headers=api.auth()).headers["range"] == "0-0"
    assert_stored(api, put(api, location, sha(data), data, **{"content-range": "0-999"}), data)


# -- session status, cancel, binding -----------------------------------------------------
def test_cancel_ends_the_session(api: Api) -> None:
    location = start(api)
    assert patch(api, location, b"abc").status_code == 202
    r = api.client.delete(location, headers=api.auth())
    assert r.status_code == 204
    for answer in (
        api.client.get(location, headers=api.auth()),
        patch(api, location, b"def"),
        put(api, location, sha(b"abc")),
        api.client.delete(location, headers=api.auth()),
    ):
        assert answer.status_code == 404
        assert oci_error(answer)["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert held(api, b"abc") == 404


def test_unknown_and_expired_sessions_are_blob_upload_unknown(
    api: Api, deployment: Deployment
) -> None:
    r = api.client.get(uploads() + "0" * 32, headers=api.auth())
    assert r.status_code == 404
    assert oci_error(r)["code"] == "BLOB_UPLOAD_UNKNOWN"
    location = start(api)
    with deployment.engine.begin() as conn:
        conn.execute(update(UploadRow).values(expires_at=UploadRow.created_at))
    r = api.client.get(location, headers=api.auth())
    assert r.status_code == 404
    assert oci_error(r)["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_a_session_belongs_to_its_repository_and_its_token(
    api: Api, deployment: Deployment
) -> None:
    data = b"bound"
    location = start(api)
    upload_id = location.rsplit("/", 1)[1]
    elsewhere = uploads(OTHER) + upload_id
    for answer in (
        api.client.get(elsewhere, headers=api.auth()),
        patch(api, elsewhere, data),
        put(api, elsewhere, sha(data), data),
        api.client.delete(elsewhere, headers=api.auth()),
    ):
        assert answer.status_code == 404
        assert oci_error(answer)["code"] == "BLOB_UPLOAD_UNKNOWN"
    # another publisher's token does not see it; an admin does
    stranger = {"authorization": f"Bearer {deployment.token(Role.PUBLISHER)}"}
    assert api.client.get(location, headers=stranger).status_code == 404
    assert api.client.get(location, headers=api.auth(Role.ADMIN)).status_code == 204
    # nor is a /v2 session a /v1 one, or the reverse
    assert api.client.head(f"/v1/uploads/{upload_id}", headers=api.auth()).status_code == 404
    v1 = api.client.post("/v1/uploads", headers=api.auth()).json()["id"]
    assert api.client.get(uploads() + v1, headers=api.auth()).status_code == 404
    assert held(api, data, OTHER) == 404


def test_a_reader_may_not_upload(api: Api) -> None:
    location = start(api)
    reader = api.auth(Role.READER)
    for answer in (
        api.client.post(uploads(), headers=reader),
        api.client.post(uploads(), params={"digest": sha(b"x")}, content=b"x", headers=reader),
        api.client.get(location, headers=reader),
        api.client.patch(location, content=b"x", headers=reader),
        api.client.put(location, params={"digest": sha(b"x")}, content=b"x", headers=reader),
        api.client.delete(location, headers=reader),
    ):
        assert answer.status_code == 403
        assert oci_error(answer)["code"] == "DENIED"
    assert held(api, b"x") == 404


def test_a_wrong_digest_publishes_nothing_and_keeps_the_session(api: Api) -> None:
    data = os.urandom(20_000)
    location = start(api)
    assert patch(api, location, data[:10_000]).status_code == 202
    r = put(api, location, sha(b"not this"), data[10_000:])
    assert r.status_code == 400
    assert oci_error(r)["code"] == "DIGEST_INVALID"
    assert held(api, data) == 404 and held(api, b"not this") == 404
    assert (
        api.client.head(f"/v1/blobs/{digests(data).blake3}", headers=api.auth()).status_code == 404
    )
    # the final chunk of a refused PUT was not kept
    assert api.client.get(location, headers=api.auth()).headers["range"] == "0-9999"
    assert_stored(api, put(api, location, sha(data), data[10_000:]), data)


# -- mount -------------------------------------------------------------------------------
def test_mount_from_a_repository_that_holds_the_blob(api: Api) -> None:
    data = os.urandom(4096)
    r = api.client.post(
        uploads(OTHER), params={"digest": sha(data)}, content=data, headers=api.auth()
    )
    assert r.status_code == 201
    assert held(api, data) == 404
    r = api.client.post(uploads(), params={"mount": sha(data), "from": OTHER}, headers=api.auth())
    assert_stored(api, r, data)
    assert held(api, data) == 200


def test_mount_of_a_blob_the_source_does_not_hold_opens_a_session(api: Api) -> None:
    data = os.urandom(4096)
    # stored, but only in NAME: OTHER cannot lend it, and nothing else can
    r = api.client.post(uploads(), params={"digest": sha(data)}, content=data, headers=api.auth())
    assert r.status_code == 201
    for params in (
        {"mount": sha(data), "from": "team/empty"},  # a repository that does not hold it
        {"mount": sha(b"never pushed"), "from": NAME},  # a blob nobody has
        {"mount": sha(data)},  # no from
    ):
        r = api.client.post(uploads(OTHER), params=params, headers=api.auth())
        assert r.status_code == 202, params
        assert r.headers["location"].startswith(uploads(OTHER))
        assert r.headers["range"] == "0-0"
        assert api.client.get(r.headers["location"], headers=api.auth()).status_code == 204
    assert held(api, data, OTHER) == 404
    r = api.client.post(
        uploads(OTHER), params={"mount": "sha256:bad", "from": NAME}, headers=api.auth()
    )
    assert r.status_code == 400
    assert oci_error(r)["code"] == "DIGEST_INVALID"
    r = api.client.post(
        uploads(OTHER), params={"mount": sha(data), "from": "Bad"}, headers=api.auth()
    )
    assert r.status_code == 400
    assert oci_error(r)["code"] == "NAME_INVALID"


def test_upload_answers_are_challenged_without_a_token(api: Api) -> None:
    r = api.client.post(uploads(), params={"mount": sha(b"x"), "from": OTHER})
    assert r.status_code == 401
    assert 'scope="repository:library/app:pull,push"' in r.headers["www-authenticate"]


# -- one pass for a lone part --------------------------------------------------------------
def test_a_part_at_offset_0_keeps_its_digests_and_later_parts_do_not(
    api: Api, deployment: Deployment
) -> None:
    data = os.urandom(3000)
    location = start(api)
    assert patch(api, location, data[:1000]).status_code == 202
    assert patch(api, location, data[1000:]).status_code == 202
    with deployment.engine.connect() as conn:
        rows = conn.execute(
            select(UploadPartRow.offset_bytes, UploadPartRow.blake3, UploadPartRow.sha256)
            .where(UploadPartRow.upload_id == location.rsplit("/", 1)[1])
            .order_by(UploadPartRow.offset_bytes)
        ).all()
    first = digests(data[:1000])
    assert [tuple(row) for row in rows] == [
        (0, first.blake3.hex, first.sha256.hex),
        (1000, None, None),
    ]


class ReadRecordingStore:
    """The deployment's store, recording which upload parts are read back."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.parts_read: list[str] = []

    def read_part(self, upload_id: str, part_name: str) -> Iterator[bytes]:
        self.parts_read.append(part_name)
        return self._store.read_part(upload_id, part_name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_a_lone_part_is_published_without_being_read_again(deployment: Deployment) -> None:
    """skopeo's POST, one PATCH, PUT: the layer crosses the disk (or the network to S3)
    once. An upload of several parts is still read back and hashed at commit."""
    svc = deployment.services()
    recording = ReadRecordingStore(svc.store)
    writes = make_session_factory(deployment.engine)
    reads = make_session_factory(deployment.engine, read_only=True)
    blobs = BlobService(cast(BlobStore, recording), writes, reads, Metrics())
    uploads = UploadService(blobs, writes, reads, svc.settings.limits)
    lone, several = os.urandom(6 * 1024 * 1024 + 5), os.urandom(5000)

    async def push(data: bytes, cut: int) -> tuple[Digest, bool]:
        upload = uploads.create("token", NAME)
        await uploads.append(upload.id, "token", None, _one(data[:cut]), NAME)
        if cut < len(data):
            await uploads.append(upload.id, "token", None, _one(data[cut:]), NAME)
        claimed = digests(data).sha256
        info, created = await uploads.commit(upload.id, "token", claimed, NAME)
        return info.digests.sha256, created

    assert anyio.run(push, lone, len(lone)) == (digests(lone).sha256, True)
    assert recording.parts_read == []
    assert b"".join(svc.store.read(digests(lone).blake3.hex)) == lone
    assert svc.store.list_upload_ids() == []

    assert anyio.run(push, several, 2000) == (digests(several).sha256, True)
    assert len(recording.parts_read) == 2
    assert b"".join(svc.store.read(digests(several).blake3.hex)) == several

    # a wrong digest publishes nothing and keeps the session, lone part or not
    async def refused(data: bytes) -> None:
        upload = uploads.create("token", NAME)
        await uploads.append(upload.id, "token", 0, _one(data), NAME)
        with pytest.raises(DigestMismatchError):
            await uploads.commit(upload.id, "token", digests(b"other").sha256, NAME)
        assert uploads.status(upload.id, "token", NAME).offset_bytes == len(data)

    data = os.urandom(4000)
    anyio.run(refused, data)
    assert svc.store.size_of(digests(data).blake3.hex) is None
    assert blobs.find(digests(data).sha256) is None
    svc.close()


def test_a_commit_that_died_after_promoting_its_part_is_finished_by_the_next(
    deployment: Deployment,
) -> None:
    """The part was published at the blob key (renamed away, on a filesystem) but no row
    was written: committing again rehashes the bytes at the key and records them."""
    svc = deployment.services()
    data = os.urandom(10_000)
    d = digests(data)

    async def scenario() -> bool:
        upload = svc.uploads.create("token", NAME)
        await svc.uploads.append(upload.id, "token", None, _one(data), NAME)
        with deployment.engine.connect() as conn:
            part_name = conn.execute(
                select(UploadPartRow.part_name).where(UploadPartRow.upload_id == upload.id)
            ).scalar_one()
        svc.store.promote_part(upload.id, part_name, d.blake3.hex)  # then the process died
        assert svc.blobs.find(d.sha256) is None
        info, created = await svc.uploads.commit(upload.id, "token", d.sha256, NAME)
        assert info.digests == d
        return created

    assert anyio.run(scenario) is True
    assert svc.blobs.find(d.sha256) is not None
    assert b"".join(svc.store.read(d.blake3.hex)) == data
    svc.close()
