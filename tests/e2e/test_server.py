"""The registry as a newcomer runs it: a real server process, driven over HTTP.

The same session runs on the embedded default and on PostgreSQL + S3.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Deployment
from tests.support.content import digests, manifest_bytes
from tests.support.server import ServerProcess, run_cli, send_truncated

pytestmark = pytest.mark.slow


def test_cli_prints_only_the_token_and_revokes_it(
    server: tuple[ServerProcess, str], deployment: Deployment
) -> None:
    proc, _ = server
    token = run_cli(deployment.env, "token", "create", "--role", "reader").strip()
    assert token.startswith("rlq_")
    assert "\n" not in token
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{proc.url}/v1/artifacts", headers=auth).status_code == 200
    token_id = httpx.get(
        f"{proc.url}/v1/tokens", headers={"authorization": f"Bearer {server[1]}"}
    ).json()[-1]["id"]
    run_cli(deployment.env, "token", "revoke", token_id)
    # another process revoked it: the API's token cache (2s TTL) lets go within its TTL
    deadline = time.monotonic() + 5
    status = 200
    while status != 401 and time.monotonic() < deadline:
        status = httpx.get(f"{proc.url}/v1/artifacts", headers=auth).status_code
        time.sleep(0.2)
    assert status == 401
    with pytest.raises(subprocess.CalledProcessError) as info:
        run_cli(deployment.env, "token", "revoke", "0000")
    assert "no token" in info.value.stderr


def test_upload_dedupe_ranges_and_manifest(server: tuple[ServerProcess, str]) -> None:
    proc, admin = server
    auth = {"authorization": f"Bearer {admin}"}
    files = {"model.bin": os.urandom(5 * 1024 * 1024), "config.json": b'{"layers": 2}'}
    with httpx.Client(base_url=proc.url, headers=auth, timeout=60) as http:
        for data in files.values():
            assert http.put(f"/v1/blobs/{digests(data).blake3}", content=data).status_code == 201
        again = http.put(
            f"/v1/blobs/{digests(files['config.json']).blake3}", content=files["config.json"]
        )
        assert again.status_code == 200
        big = digests(files["model.bin"])
        head = http.head(f"/v1/blobs/{big.sha256}")
        assert head.headers["content-length"] == str(len(files["model.bin"]))
        part = http.get(f"/v1/blobs/{big.blake3}", headers={"range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == files["model.bin"][1000:2000]
        raw = manifest_bytes("acme/demo", "v1", files)
        assert http.put("/v1/artifacts", content=raw).status_code == 201
        assert http.get(f"/v1/artifacts/{digests(raw).sha256}").content == raw


def test_interrupted_uploads_leave_nothing_and_resume_across_restarts(
    server: tuple[ServerProcess, str], deployment: Deployment
) -> None:
    proc, admin = server
    auth = {"authorization": f"Bearer {admin}"}
    data = os.urandom(3 * 1024 * 1024)
    d = digests(data)
    # a monolithic upload cut halfway: nothing becomes visible
    send_truncated(
        proc.port, "PUT", f"/v1/blobs/{d.blake3}", admin, len(data), data[: len(data) // 2]
    )
    assert httpx.head(f"{proc.url}/v1/blobs/{d.blake3}", headers=auth).status_code == 404

    url = httpx.post(f"{proc.url}/v1/uploads", headers=auth).headers["location"]
    r = httpx.patch(
        f"{proc.url}{url}", content=data[:1_000_000], headers={**auth, "upload-offset": "0"}
    )
    assert r.status_code == 204
    # a chunk cut by the network does not move the offset
    send_truncated(proc.port, "PATCH", url, admin, 2_000_000, data[1_000_000:1_500_000])
    # the API process dies; a new one picks the session up from the database
    proc.stop(kill=True)
    proc.start()
    offset = int(httpx.head(f"{proc.url}{url}", headers=auth).headers["upload-offset"])
    assert offset == 1_000_000
    r = httpx.patch(
        f"{proc.url}{url}", content=data[offset:], headers={**auth, "upload-offset": str(offset)}
    )
    assert r.status_code == 204
    r = httpx.put(f"{proc.url}{url}", params={"digest": str(d.blake3)}, headers=auth)
    assert r.status_code == 201
    assert httpx.get(f"{proc.url}/v1/blobs/{d.blake3}", headers=auth).content == data
    if deployment.name == "embedded":  # no staged or partial file was left behind
        blob_root = Path(deployment.env["RELIQUARY_DATA_DIR"]) / "blobs"
        assert list((blob_root / "_staging").iterdir()) == []


def test_concurrent_pushes_of_one_blob_all_succeed_and_store_it_once(
    server: tuple[ServerProcess, str], deployment: Deployment
) -> None:
    proc, admin = server
    data = os.urandom(8 * 1024 * 1024)
    d = digests(data)

    def push(_: int) -> int:
        r = httpx.put(
            f"{proc.url}/v1/blobs/{d.blake3}",
            content=data,
            headers={"authorization": f"Bearer {admin}"},
            timeout=120,
        )
        return r.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(push, range(8)))
    assert statuses.count(201) == 1, statuses
    assert statuses.count(200) == 7, statuses
    if deployment.name == "embedded":
        shard = (
            Path(deployment.env["RELIQUARY_DATA_DIR"])
            / "blobs"
            / "blobs"
            / "blake3"
            / d.blake3.hex[:2]
        )
        assert [p.name for p in shard.iterdir()] == [d.blake3.hex]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # fsck agrees with the database
        if "missing" not in run_cli(deployment.env, "fsck"):
            break
    assert "checked 1 blobs" in run_cli(deployment.env, "fsck")


def test_racing_chunks_at_one_offset_exactly_one_wins(server: tuple[ServerProcess, str]) -> None:
    proc, admin = server
    auth = {"authorization": f"Bearer {admin}"}
    url = proc.url + httpx.post(f"{proc.url}/v1/uploads", headers=auth).headers["location"]
    chunks = [os.urandom(2 * 1024 * 1024) for _ in range(6)]

    def patch(chunk: bytes) -> int:
        r = httpx.patch(url, content=chunk, headers={**auth, "upload-offset": "0"}, timeout=60)
        return r.status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(patch, chunks))
    assert sorted(statuses) == [204] + [409] * 5, statuses
    assert httpx.head(url, headers=auth).headers["upload-offset"] == str(2 * 1024 * 1024)
    winner = next(c for c, s in zip(chunks, statuses, strict=True) if s == 204)
    r = httpx.put(url, params={"digest": str(digests(winner).blake3)}, headers=auth)
    assert r.status_code == 201
