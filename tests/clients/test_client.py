"""The SDK against a real ``reliquary-server`` process over HTTP, on both deployments.

A training job pushes blobs (monolithic and resumable, surviving an interruption)
and a manifest; a validator pulls them back and never trusts the server: a tiny
separate HTTP server that lies is caught.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from clients.client import RegistryClient, RemoteBlob
from clients.errors import (
    AuthError,
    InvalidRequestError,
    NotFoundError,
    RefusedError,
    ReliquaryError,
    ServerError,
    TransportError,
    VerificationError,
)
from registry.core.digest import Digest
from registry.core.roles import Role
from tests.conftest import Deployment
from tests.support.content import digests, manifest_bytes
from tests.support.fake_registry import Answer, fake_registry
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

MiB = 2**20


@pytest.fixture
def server(deployment: Deployment) -> Iterator[tuple[ServerProcess, str]]:
    """tests/e2e's fixture, less two CLI runs: the database is already migrated, and
    the admin token is issued in-process on the same database (saves ~2 s a test)."""
    admin = deployment.token(Role.ADMIN)
    with ServerProcess(deployment.env) as proc:
        yield proc, admin


@pytest.fixture
def client(server: tuple[ServerProcess, str]) -> Iterator[RegistryClient]:
    proc, admin = server
    with RegistryClient(proc.url, admin, backoff_seconds=0.01) as c:
        yield c


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(client: RegistryClient, digest: Digest, offset: int = 0) -> bytes:
    with client.open_blob(digest, offset=offset) as chunks:
        return b"".join(chunks)


# -- blobs -------------------------------------------------------------------------------
def test_blobs_are_stored_once_found_by_either_digest_and_read_back(
    client: RegistryClient, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB + 123)
    d = digests(data)
    path = write(tmp_path, "weights.bin", data)
    assert client.blob(d.blake3) is None
    assert client.blob(d.sha256) is None

    sent: list[int] = []
    assert client.put_blob(d.blake3, path, on_bytes=sent.append) is True
    assert sum(sent) == len(data)
    assert len(sent) == 4  # streamed in 1 MiB reads, each reported once sent
    assert client.put_blob(d.sha256, path) is False  # already stored

    expected = RemoteBlob(d.blake3, d.sha256, len(data))
    assert client.blob(d.blake3) == expected
    assert client.blob(d.sha256) == expected
    assert read_all(client, d.blake3) == data
    assert read_all(client, d.sha256, offset=MiB + 7) == data[MiB + 7 :]

    # one client, many threads (how push and pull use it)
    blobs = [os.urandom(64 * 1024 + i) for i in range(12)]
    paths = [write(tmp_path, f"b{i}", b) for i, b in enumerate(blobs)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        created = list(pool.map(lambda p, b: client.put_blob(digests(b).blake3, p), paths, blobs))
        found = list(pool.map(lambda b: client.blob(digests(b).sha256), blobs))
    assert created == [True] * len(blobs)
    assert [f.size_bytes if f else None for f in found] == [len(b) for b in blobs]


# -- resumable uploads --------------------------------------------------------------------
class Interrupted(Exception):
    """The push process 'dies' mid-chunk."""


def die_after(limit_bytes: int, sent: list[int]) -> Callable[[int], None]:
    def on_bytes(n: int) -> None:
        sent.append(n)
        if sum(sent) > limit_bytes:
            raise Interrupted

    return on_bytes


def server_offset(token: str, location: str) -> int:
    r = httpx.head(location, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r
    return int(r.headers["upload-offset"])


def test_an_interrupted_upload_resumes_from_the_servers_offset(
    client: RegistryClient, server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    _, admin = server
    data = os.urandom(20 * MiB + 5)
    d = digests(data)
    path = write(tmp_path, "model.bin", data)
    session = tmp_path / "upload.json"
    before: list[int] = []
    with pytest.raises(Interrupted):  # dies during the second 4 MiB chunk
        client.upload_resumable(
            d.blake3,
            path,
            chunk_bytes=4 * MiB,
            session_file=session,
            on_bytes=die_after(5 * MiB, before),
        )
    saved = json.loads(session.read_text())
    assert saved["digest"] == str(d.blake3)
    assert saved["size_bytes"] == len(data)
    assert server_offset(admin, saved["location"]) == 4 * MiB
    assert client.blob(d.blake3) is None

    after: list[int] = []
    assert client.upload_resumable(
        d.blake3, path, chunk_bytes=4 * MiB, session_file=session, on_bytes=after.append
    )
    assert after[0] == 4 * MiB  # the part the server already held, reported once
    assert sum(after) == len(data)
    assert not session.exists()
    assert read_all(client, d.blake3) == data
    assert client.blob(d.sha256) == RemoteBlob(d.blake3, d.sha256, len(data))
    assert (
        httpx.head(saved["location"], headers={"authorization": f"Bearer {admin}"}).status_code
        == 404
    )
    assert client.upload_resumable(d.sha256, path, chunk_bytes=8 * MiB) is False


def test_a_session_the_server_forgot_starts_over(
    client: RegistryClient, server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    _, admin = server
    data = os.urandom(6 * MiB)
    d = digests(data)
    path = write(tmp_path, "model.bin", data)
    session = tmp_path / "upload.json"
    with pytest.raises(Interrupted):
        client.upload_resumable(
            d.blake3,
            path,
            chunk_bytes=2 * MiB,
            session_file=session,
            on_bytes=die_after(3 * MiB, []),
        )
    location = json.loads(session.read_text())["location"]
    auth = {"authorization": f"Bearer {admin}"}
    assert httpx.delete(location, headers=auth).status_code == 204  # aborted (or expired)

    sent: list[int] = []
    assert client.upload_resumable(
        d.blake3, path, chunk_bytes=2 * MiB, session_file=session, on_bytes=sent.append
    )
    assert sent[0] == MiB  # from byte 0, in 1 MiB reads
    assert sum(sent) == len(data)
    assert read_all(client, d.sha256) == data


# -- manifests ----------------------------------------------------------------------------
FILES = {"config.json": b'{"layers": 2}', "saved_model.pb": os.urandom(300_000)}


def push_files(client: RegistryClient, tmp_path: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        client.put_blob(digests(data).blake3, write(tmp_path, name.replace("/", "_"), data))


def test_manifests_are_pushed_once_verified_resolved_listed_and_refused(
    client: RegistryClient, tmp_path: Path
) -> None:
    push_files(client, tmp_path, FILES)
    raw = manifest_bytes("acme/demo", "v1", FILES, labels={"team": "acme"})
    d = digests(raw)
    artifact, created = client.put_manifest(raw)
    assert created is True
    assert artifact["digest"] == str(d.blake3)
    assert artifact["sha256"] == str(d.sha256)
    assert client.put_manifest(raw) == (artifact, False)

    assert client.manifest(d.blake3) == raw
    assert client.manifest(d.sha256) == raw
    assert client.resolve("acme/demo", "v1")["digest"] == str(d.blake3)
    page = client.list_artifacts(label="team=acme", kind="model")
    assert [a["digest"] for a in page["artifacts"]] == [str(d.blake3)]
    assert client.list_artifacts(name="acme/other")["artifacts"] == []

    # what the registry refuses
    other = manifest_bytes("acme/demo", "v1", FILES, labels={"team": "other"})
    with pytest.raises(RefusedError) as taken:
        client.put_manifest(other)
    assert (taken.value.status, taken.value.exit_code) == (409, 5)
    assert taken.value.slug == "version-taken"
    assert taken.value.problem is not None
    assert taken.value.problem["existing_digest"] == str(d.blake3)
    assert taken.value.problem["pushed_digest"] == str(digests(other).blake3)
    assert str(d.blake3) in str(taken.value)

    lacking = manifest_bytes("acme/demo", "v2", {**FILES, "extra.bin": b"never uploaded"})
    with pytest.raises(RefusedError) as missing:
        client.put_manifest(lacking)
    assert missing.value.status == 422
    assert missing.value.problem is not None
    assert [m["path"] for m in missing.value.problem["missing"]] == ["extra.bin"]

    with pytest.raises(InvalidRequestError) as invalid:
        client.put_manifest(json.dumps(json.loads(raw), indent=1).encode())
    assert (invalid.value.status, invalid.value.exit_code) == (400, 2)


# -- errors -------------------------------------------------------------------------------
def test_errors_map_to_their_classes(
    client: RegistryClient,
    server: tuple[ServerProcess, str],
    deployment: Deployment,
    tmp_path: Path,
) -> None:
    proc, _ = server
    unknown = digests(b"never pushed")
    for call in (
        lambda: client.manifest(unknown.blake3),
        lambda: client.resolve("acme/none", "v1"),
        lambda: read_all(client, unknown.sha256),
    ):
        with pytest.raises(NotFoundError) as info:
            call()
        assert (info.value.status, info.value.exit_code) == (404, 3)

    stranger = RegistryClient(proc.url, "rlq_not-a-real-token")
    with stranger, pytest.raises(AuthError) as unauthenticated:
        stranger.list_artifacts()
    assert (unauthenticated.value.status, unauthenticated.value.exit_code) == (401, 6)
    assert "reliquary login" in str(unauthenticated.value)

    path = write(tmp_path, "w.bin", b"weights")
    reader = RegistryClient(proc.url, deployment.token(Role.READER))
    with reader, pytest.raises(AuthError) as forbidden:
        reader.put_blob(digests(b"weights").blake3, path)
    assert forbidden.value.status == 403

    # a file that is not the digest it is pushed as: refused, nothing stored
    claimed = digests(b"the weights we meant to push")
    tampered = write(tmp_path, "weights.bin", b"tampered weights")
    with pytest.raises(VerificationError) as mismatch:
        client.put_blob(claimed.blake3, tampered)
    assert (mismatch.value.status, mismatch.value.exit_code) == (400, 4)
    assert mismatch.value.problem is not None
    assert mismatch.value.problem["claimed"] == str(claimed.blake3)
    assert mismatch.value.problem["received_blake3"] == str(digests(b"tampered weights").blake3)
    assert client.blob(claimed.blake3) is None
    assert client.blob(digests(b"tampered weights").blake3) is None


def test_a_closed_port_is_a_transport_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = RegistryClient(url, "t", max_retries=2, backoff_seconds=0.01)
    with client, pytest.raises(TransportError) as info:
        client.blob(digests(b"x").blake3)
    message = str(info.value)
    assert url in message
    assert "RELIQUARY_URL" in message
    assert "after 3 attempts" in message
    assert info.value.exit_code == 1


# -- a registry that lies, or fails ---------------------------------------------------------
def test_altered_manifest_bytes_are_detected() -> None:
    raw = manifest_bytes("acme/demo", "v1", FILES)
    d = digests(raw)
    altered = raw.replace(b'"v1"', b'"v2"')
    served = (200, {"content-type": "application/json"}, altered)
    with (
        fake_registry(
            {f"GET /v1/artifacts/{d.blake3}": [served], f"GET /v1/artifacts/{d.sha256}": [served]}
        ) as fake,
        RegistryClient(fake.url, "t") as client,
    ):
        for ref, got in ((d.blake3, digests(altered).blake3), (d.sha256, digests(altered).sha256)):
            with pytest.raises(VerificationError) as info:
                client.manifest(ref)
            assert str(ref) in str(info.value)
            assert str(got) in str(info.value)
            assert info.value.exit_code == 4


def test_a_blob_described_as_other_bytes_is_detected() -> None:
    asked, other = digests(b"asked for"), digests(b"something else")
    headers = {"reliquary-blake3": str(other.blake3), "reliquary-sha256": str(other.sha256)}
    script: dict[str, list[Answer]] = {f"HEAD /v1/blobs/{asked.blake3}": [(200, headers, b"")]}
    with (
        fake_registry(script) as fake,
        RegistryClient(fake.url, "t") as client,
        pytest.raises(VerificationError),
    ):
        client.blob(asked.blake3)


def test_idempotent_calls_retry_server_errors_and_creation_does_not() -> None:
    unavailable: Answer = (503, {"content-type": "application/problem+json"}, b'{"detail": "busy"}')
    ok: Answer = (200, {"content-type": "application/json"}, b'{"digest": "blake3:x"}')
    script: dict[str, list[Answer]] = {
        "GET /v1/resolve": [unavailable, (429, {"retry-after": "0"}, b""), ok],
        "GET /v1/artifacts": [(500, {}, b"")],
        "POST /v1/uploads": [unavailable],
    }
    with (
        fake_registry(script) as fake,
        RegistryClient(fake.url, "t", max_retries=3, backoff_seconds=0.01) as client,
    ):
        assert client.resolve("acme/demo", "v1") == {"digest": "blake3:x"}
        assert fake.seen.count("GET /v1/resolve") == 3
        with pytest.raises(ServerError) as failed:
            client.list_artifacts()
        assert fake.seen.count("GET /v1/artifacts") == 4  # 1 + max_retries
        assert failed.value.status == 500
        with pytest.raises(ServerError) as busy:
            client.upload_resumable(digests(b"x").blake3, Path(__file__))
        assert fake.seen.count("POST /v1/uploads") == 1  # never sent twice
        assert "busy" in str(busy.value)


def test_a_redirected_blob_is_fetched_without_the_token() -> None:
    data = b"weights served by the object store"
    d = digests(data)
    with fake_registry({"GET /bucket/blob": [(200, {}, data)]}) as store:
        moved: Answer = (307, {"location": f"{store.url}/bucket/blob?X-Amz-Signature=s"}, b"")
        with (
            fake_registry({f"GET /v1/blobs/{d.blake3}": [moved]}) as registry,
            RegistryClient(registry.url, "t") as client,
            client.open_blob(d.blake3) as chunks,
        ):
            assert b"".join(chunks) == data
    assert registry.tokens == ["Bearer t"]
    assert store.seen == ["GET /bucket/blob"] and store.tokens == [None]


def test_a_refusing_or_unreachable_object_store_is_named_not_the_registry() -> None:
    d = digests(b"weights")
    expired: Answer = (403, {}, b"<Error>Request has expired</Error>")
    with fake_registry({"GET /bucket/blob": [expired]}) as store:
        moved: Answer = (307, {"location": f"{store.url}/bucket/blob?X-Amz-Signature=s3cr3t"}, b"")
        with (
            fake_registry({f"GET /v1/blobs/{d.blake3}": [moved]}) as registry,
            RegistryClient(registry.url, "t") as client,
            pytest.raises(ReliquaryError) as refused,
            client.open_blob(d.blake3),
        ):
            pass
    message = str(refused.value)
    assert "object store" in message and "expired" in message and "clocks" in message
    assert "s3cr3t" not in message and "reliquary login" not in message  # not a token problem

    gone = free_port()  # nothing listens there
    moved = (307, {"location": f"http://127.0.0.1:{gone}/bucket/blob?X-Amz-Signature=s"}, b"")
    with (
        fake_registry({f"GET /v1/blobs/{d.blake3}": [moved]}) as registry,
        RegistryClient(registry.url, "t", max_retries=1, backoff_seconds=0.01) as client,
        pytest.raises(TransportError) as unreachable,
        client.open_blob(d.blake3),
    ):
        pass
    assert f"127.0.0.1:{gone}/bucket/blob" in str(unreachable.value)
    assert "RELIQUARY_S3_PUBLIC_ENDPOINT_URL" in str(unreachable.value)


def test_a_redirect_from_https_down_to_http_is_refused() -> None:
    d = digests(b"weights")
    with RegistryClient("https://registry.invalid", "t") as client:
        session = client._http  # no https registry on loopback here: call the check itself
        with pytest.raises(ReliquaryError) as refused:
            session._fetch_elsewhere(
                "GET",
                httpx.URL(f"http://store.invalid/b/{d.blake3.hex}?X-Amz-Signature=s3cr3t"),
                httpx.URL(f"https://registry.invalid/v1/blobs/{d.blake3}"),
                None,
            )
    assert "plain-HTTP" in str(refused.value) and "s3cr3t" not in str(refused.value)
