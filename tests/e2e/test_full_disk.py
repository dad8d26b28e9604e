"""A registry whose disk fills up, for real: the embedded deployment (SQLite and the
filesystem blob store) on a tmpfs of a few MiB, mounted in the server's own mount
namespace (``unshare --user --mount``: no privilege on the host, nothing mounted there).

The write that does not fit is answered 507 problem+json, a blob's bytes or a database
row alike; everything acknowledged before stays readable; once space is freed the same
writes go through.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.content import digests, manifest_bytes
from tests.support.server import free_port

pytestmark = pytest.mark.slow

SERVER = str(Path(sys.executable).parent / "reliquary-server")
DISK_BYTES = 12 * 2**20
BLOB_BYTES = 512 * 1024
INSUFFICIENT = "https://reliquary.dev/problems/insufficient-storage"
START = """set -e
mount -t tmpfs -o size={size} tmpfs "$RELIQUARY_DATA_DIR"
"$SERVER" db upgrade >/dev/null
"$SERVER" token create --role admin > "$TOKEN_FILE"
exec "$SERVER" serve --port "$PORT" --log-level warning
"""


def _private_mounts_work(where: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    where.mkdir(exist_ok=True)
    probe = f'mount -t tmpfs -o size=64k tmpfs "{where}"'
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", probe],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@dataclass
class SmallDisk:
    url: str
    admin: dict[str, str]
    disk: Path  # the tmpfs, as this process reaches it through the server's mount namespace


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    if not _private_mounts_work(tmp_path / "probe"):
        pytest.skip("needs unprivileged user and mount namespaces (unshare -Urm) for a tmpfs")
    data = tmp_path / "data"
    data.mkdir()
    token_file, port = tmp_path / "admin-token", free_port()
    env = {
        **os.environ,
        "RELIQUARY_DATA_DIR": str(data),
        "RELIQUARY_STORAGE": "filesystem",
        "SERVER": SERVER,
        "TOKEN_FILE": str(token_file),
        "PORT": str(port),
    }
    for name in ("RELIQUARY_DATABASE_URL", "RELIQUARY_BLOB_DIR", "RELIQUARY_LOG_KEY_FILE"):
        env.pop(name, None)
    process = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         START.format(size=DISK_BYTES)],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the server exited with {process.returncode}"
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        admin = {"authorization": f"Bearer {token_file.read_text().strip()}"}
        yield SmallDisk(url, admin, Path(f"/proc/{process.pid}/root") / data.relative_to("/"))
    finally:
        process.terminate()
        process.wait(timeout=30)


def _fill(path: Path) -> None:
    """Write zeros to ``path`` until the disk under it has no room left."""
    with path.open("wb", buffering=0) as handle:
        block = bytes(64 * 1024)
        while True:
            try:
                handle.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        block = bytes(4096)
        while True:
            try:
                handle.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return


def _refused(answer: httpx.Response) -> None:
    assert answer.status_code == 507, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == INSUFFICIENT
    assert "nothing was" in answer.json()["detail"]


def test_a_full_disk_refuses_the_write_that_does_not_fit_and_keeps_the_rest(
    small_disk: SmallDisk,
) -> None:
    with httpx.Client(base_url=small_disk.url, headers=small_disk.admin, timeout=60) as http:
        stored: dict[str, bytes] = {}
        for i in range(DISK_BYTES // BLOB_BYTES + 2):  # blobs until the store is full
            data = os.urandom(BLOB_BYTES)
            answer = http.put(f"/v1/blobs/{digests(data).blake3}", content=data)
            if answer.status_code != 201:
                _refused(answer)
                refused = data
                break
            stored[f"model-{i}.bin"] = data
        else:
            raise AssertionError("the disk never filled")
        assert http.head(f"/v1/blobs/{digests(refused).blake3}").status_code == 404

        _fill(small_disk.disk / "filler")  # what the refused blob's staging gave back
        _refused(http.post("/v1/tokens", json={"role": "reader"}))  # a database row
        tokens = http.get("/v1/tokens").json()
        raw = manifest_bytes("full/disk", "v1", stored)
        _refused(http.put("/v1/artifacts", content=raw))
        assert http.get(f"/v1/artifacts/{digests(raw).blake3}").status_code == 404
        assert http.get("/v1/tokens").json() == tokens

        (small_disk.disk / "filler").unlink()  # room again: the same writes go through
        assert http.put("/v1/artifacts", content=raw).status_code == 201
        assert http.post("/v1/tokens", json={"role": "reader"}).status_code == 201
        for data in stored.values():  # everything acknowledged is intact
            assert http.get(f"/v1/blobs/{digests(data).blake3}").content == data
