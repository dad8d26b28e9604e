"""The `reliquary` CLI as training jobs and validator nodes use it, against a real server.

Every test drives the installed command in a subprocess; the server is a real
`reliquary-server` process on the embedded default and on PostgreSQL + S3.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.core.canonical import canonical_bytes
from tests.conftest import Deployment
from tests.support.content import digests, file_entry, manifest_bytes
from tests.support.s3 import endpoint_of, s3_client
from tests.support.server import CLI, ServerProcess, run_cli

pytestmark = pytest.mark.slow
MiB = 1024 * 1024


@dataclass
class Registry:
    server: ServerProcess
    deployment: Deployment
    token: str
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "RELIQUARY_URL": self.server.url,
            "RELIQUARY_TOKEN": self.token,
            "RELIQUARY_CACHE": str(self.home / "cache"),
            "RELIQUARY_CONFIG": str(self.home / "config.toml"),
            **extra,
        }

    def run(self, *args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [CLI, *args], env=self.env(**extra), capture_output=True, text=True, timeout=300
        )
        if check and done.returncode != 0:
            raise AssertionError(f"reliquary {' '.join(args)} -> {done.returncode}\n{done.stderr}")
        return done

    def json(self, *args: str, **extra: str) -> Any:
        return json.loads(self.run(*args, "--json", **extra).stdout)


@pytest.fixture
def registry(deployment: Deployment, tmp_path: Path) -> Iterator[Registry]:
    run_cli(deployment.env, "db", "upgrade")
    token = run_cli(deployment.env, "token", "create", "--role", "publisher").strip()
    proc = ServerProcess(deployment.env)
    proc.start()
    try:
        yield Registry(proc, deployment, token, tmp_path / "home")
    finally:
        proc.stop()


def make_model(root: Path, seed: int, big_bytes: int = 65 * MiB + 7) -> Path:
    """A SavedModel-shaped directory: graph, variables (one > 64 MiB), assets."""
    rng = random.Random(seed)
    files = {
        "saved_model.pb": rng.randbytes(20_000),
        "variables/variables.index": rng.randbytes(1_000),
        "variables/variables.data-00000-of-00001": rng.randbytes(big_bytes),
        "assets/vocab.txt": b"\n".join(b"token%d" % i for i in range(500)),
        "fingerprint.pb": b"",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_push_twice_then_pull_by_every_ref(registry: Registry, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", seed=1)
    sessions = ("--resumable-from", "64MiB")  # the 65 MiB file goes through a session
    first = registry.json(
        "push", str(model), "--name", "veid/trust-score", "--version", "v1", *sessions
    )
    assert first["created"] is True
    assert first["files"] == 5
    assert (
        first["uploaded_bytes"] == first["total_bytes"] == sum(len(v) for v in tree(model).values())
    )
    again = registry.json("push", str(model), "--name", "veid/trust-score", "--version", "v1")
    assert again["digest"] == first["digest"]
    assert again["created"] is False
    assert again["uploaded_bytes"] == 0  # nothing is sent twice
    plain = registry.run("push", str(model), "--name", "veid/trust-score", "--version", "v1")
    assert plain.stdout.strip() == first["digest"]

    refs = [first["digest"], first["sha256"], "veid/trust-score@v1"]
    for i, ref in enumerate(refs):
        out = tmp_path / f"pulled-{i}"
        result = registry.json("pull", ref, "-o", str(out))
        assert result["digest"] == first["digest"]
        assert tree(out) == tree(model)
        if i > 0:  # the shared cache already holds every blob
            assert result["downloaded_bytes"] == 0
    inspected = registry.json("inspect", "veid/trust-score@v1")
    assert [f["path"] for f in inspected["manifest"]["files"]] == sorted(tree(model))
    listed = registry.json("ls", "--name", "veid/trust-score")
    assert [a["digest"] for a in listed["artifacts"]] == [first["digest"]]
    assert registry.run("resolve", "veid/trust-score@v1").stdout.strip() == first["digest"]


def test_other_content_under_a_taken_version_is_refused(registry: Registry, tmp_path: Path) -> None:
    a = make_model(tmp_path / "a", seed=2, big_bytes=1000)
    b = make_model(tmp_path / "b", seed=3, big_bytes=1000)
    digest = registry.json("push", str(a), "--name", "acme/m", "--version", "v1")["digest"]
    refused = registry.run("push", str(b), "--name", "acme/m", "--version", "v1", check=False)
    assert refused.returncode == 5
    assert digest in refused.stderr
    assert "immutable" in refused.stderr.lower() or "already bound" in refused.stderr


def _session_location(cache: Path) -> str | None:
    for session in (cache / "uploads").glob("*.json"):
        try:
            return (
                str(json.loads(session.read_text())["location"])
                .split("://", 1)[-1]
                .partition("/")[2]
            )
        except (ValueError, KeyError):
            return None
    return None


def test_a_killed_push_resumes_from_the_servers_offset(registry: Registry, tmp_path: Path) -> None:
    model = tmp_path / "big"
    model.mkdir()
    data = random.Random(4).randbytes(96 * MiB)
    (model / "weights.bin").write_bytes(data)
    args = [
        "push",
        str(model),
        "--name",
        "acme/big",
        "--version",
        "v1",
        "--json",
        "--resumable-from",
        "1MiB",
        "--chunk-size",
        "2MiB",
        "--parallel",
        "1",
    ]
    proc = subprocess.Popen(
        [CLI, *args], env=registry.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    headers = {"authorization": f"Bearer {registry.token}"}
    location, offset = None, 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and offset < 4 * MiB:
        location = location or _session_location(registry.home / "cache")
        if location is not None:
            head = httpx.head(f"{registry.server.url}/{location}", headers=headers)
            offset = int(head.headers.get("upload-offset", 0))
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert location is not None and 0 < offset < len(data), "the push finished too fast to kill"

    result = registry.json(*[a for a in args if a != "--json"])
    assert result["created"] is True
    # the old session was resumed and committed, not abandoned for a new one
    gone = httpx.head(f"{registry.server.url}/{location}", headers=headers)
    assert gone.status_code == 404
    out = tmp_path / "pulled"
    registry.run("pull", "acme/big@v1", "-o", str(out))
    assert (out / "weights.bin").read_bytes() == data


def _tamper(registry: Registry, blake3_hex: str) -> None:
    env = registry.deployment.env
    key = f"blobs/blake3/{blake3_hex[:2]}/{blake3_hex}"
    if env["RELIQUARY_STORAGE"] == "filesystem":
        path = Path(env["RELIQUARY_DATA_DIR"]) / "blobs" / key
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        return
    client = s3_client(endpoint_of(env))
    body = bytearray(client.get_object(Bucket=env["RELIQUARY_S3_BUCKET"], Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=env["RELIQUARY_S3_BUCKET"], Key=key, Body=bytes(body))


def test_one_flipped_byte_on_the_server_fails_the_pull(registry: Registry, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model", seed=5, big_bytes=3 * MiB)
    registry.json("push", str(model), "--name", "acme/flip", "--version", "v1")
    victim = digests((model / "variables/variables.data-00000-of-00001").read_bytes())
    _tamper(registry, victim.blake3.hex)
    out = tmp_path / "out"
    failed = registry.run("pull", "acme/flip@v1", "-o", str(out), check=False)
    assert failed.returncode == 4
    assert "variables/variables.data-00000-of-00001" in failed.stderr
    assert not out.exists()  # nothing half-written
    assert not list(tmp_path.glob(".out.reliquary-*"))


def test_a_lying_server_is_detected(
    liar: tuple[str, dict[str, tuple[int, str, bytes]]], tmp_path: Path
) -> None:
    url, answers = liar
    honest = manifest_bytes("acme/m", "v1", {"a.bin": b"a"})
    forged = honest.replace(b'"v1"', b'"v2"')
    real = digests(honest).blake3
    answers[f"/v1/artifacts/{real}"] = (200, "application/json", forged)
    env = {
        **os.environ,
        "RELIQUARY_URL": url,
        "RELIQUARY_TOKEN": "rlq_x",
        "RELIQUARY_CACHE": str(tmp_path / "cache"),
        "RELIQUARY_CONFIG": str(tmp_path / "c"),
    }
    out = tmp_path / "out"
    done = subprocess.run(
        [CLI, "pull", str(real), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4, done.stderr
    assert not out.exists()

    # resolves name@version to another artifact's (valid) manifest
    other = manifest_bytes("acme/other", "v9", {"a.bin": b"a"})
    other_digest = digests(other).blake3
    answers["/v1/resolve?name=acme%2Fm&version=v1"] = (
        200,
        "application/json",
        json.dumps({"digest": str(other_digest)}).encode(),
    )
    answers["/v1/resolve?name=acme/m&version=v1"] = answers["/v1/resolve?name=acme%2Fm&version=v1"]
    answers[f"/v1/artifacts/{other_digest}"] = (200, "application/json", other)
    done = subprocess.run(
        [CLI, "pull", "acme/m@v1", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4, done.stderr
    assert "acme/other@v9" in done.stderr

    # a self-consistent manifest with an escaping path
    evil = canonical_bytes(
        {
            "schema": "reliquary.manifest.v1",
            "kind": "model",
            "name": "acme/m",
            "version": "v1",
            "files": [{**file_entry("a.bin", b"a"), "path": "../../escape.bin"}],
        }
    )
    evil_digest = digests(evil).blake3
    answers[f"/v1/artifacts/{evil_digest}"] = (200, "application/json", evil)
    done = subprocess.run(
        [CLI, "pull", str(evil_digest), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4, done.stderr
    assert not (tmp_path.parent / "escape.bin").exists()


def test_shared_blobs_download_once_and_existing_files_are_kept(
    registry: Registry, tmp_path: Path
) -> None:
    shared = random.Random(6).randbytes(5 * MiB)
    for name, extra in (("a", b"only in a"), ("b", b"only in b")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "shared.bin").write_bytes(shared)
        (tmp_path / name / "own.bin").write_bytes(extra)
        registry.json("push", str(tmp_path / name), "--name", f"acme/{name}", "--version", "v1")
    first = registry.json("pull", "acme/a@v1", "-o", str(tmp_path / "pa"))
    assert first["downloaded_bytes"] == len(shared) + len(b"only in a")
    second = registry.json("pull", "acme/b@v1", "-o", str(tmp_path / "pb"))
    assert second["downloaded_bytes"] == len(b"only in b")
    assert second["cached_bytes"] == len(shared)

    (tmp_path / "pa" / "own.bin").write_bytes(b"edited locally")
    again = registry.json("pull", "acme/a@v1", "-o", str(tmp_path / "pa"), "--verify-existing")
    assert again["kept_bytes"] == len(shared)
    assert (tmp_path / "pa" / "own.bin").read_bytes() == b"only in a"


def test_exit_codes_and_login(registry: Registry, tmp_path: Path) -> None:
    missing = registry.run("pull", "blake3:" + "0" * 64, "-o", str(tmp_path / "x"), check=False)
    assert missing.returncode == 3
    denied = registry.run("ls", check=False, RELIQUARY_TOKEN="rlq_" + "0" * 64)
    assert denied.returncode == 6
    bad_ref = registry.run("pull", "not a ref", "-o", str(tmp_path / "x"), check=False)
    assert bad_ref.returncode == 2
    down = registry.run("ls", check=False, RELIQUARY_URL="http://127.0.0.1:9")
    assert down.returncode == 1

    env = registry.env()
    del env["RELIQUARY_URL"], env["RELIQUARY_TOKEN"]
    login = subprocess.run(
        [CLI, "login", registry.server.url, "--token", registry.token],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    config = registry.home / "config.toml"
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    listed = subprocess.run(
        [CLI, "ls", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["artifacts"] == []


def test_an_interrupted_download_resumes_where_it_stopped(
    registry: Registry, tmp_path: Path
) -> None:
    data = random.Random(7).randbytes(6 * MiB)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(data)
    registry.json("push", str(tmp_path / "m"), "--name", "acme/resume", "--version", "v1")
    d = digests(data)
    # what a killed pull leaves behind: the first 2 MiB in the cache's partial file
    partial = registry.home / "cache" / "partial" / d.blake3.hex
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(data[: 2 * MiB])
    result = registry.json("pull", "acme/resume@v1", "-o", str(tmp_path / "out"))
    assert result["downloaded_bytes"] == len(data) - 2 * MiB
    assert (tmp_path / "out" / "w.bin").read_bytes() == data

    # a corrupted partial download is caught, thrown away, and the next pull succeeds
    registry.home.joinpath("cache", "blobs").rename(registry.home / "old-blobs")
    partial.write_bytes(b"\x00" * MiB)
    failed = registry.run("pull", "acme/resume@v1", "-o", str(tmp_path / "out2"), check=False)
    assert failed.returncode == 4
    assert not partial.exists()
    registry.run("pull", "acme/resume@v1", "-o", str(tmp_path / "out2"))
    assert (tmp_path / "out2" / "w.bin").read_bytes() == data


def test_pulled_files_are_links_to_the_cache_and_an_edited_one_is_caught(
    registry: Registry, tmp_path: Path
) -> None:
    data = random.Random(11).randbytes(2 * MiB)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(data)
    (tmp_path / "m" / "copy-of-w.bin").write_bytes(data)
    registry.json("push", str(tmp_path / "m"), "--name", "acme/linked", "--version", "v1")
    cached = registry.home / "cache" / "blobs" / "blake3" / digests(data).blake3.hex[:2]
    cached = cached / digests(data).blake3.hex

    first = tmp_path / "first"
    result = registry.json("pull", "acme/linked@v1", "-o", str(first))
    assert result["downloaded_bytes"] == len(data)  # the blob once, for both paths
    assert (first / "w.bin").stat().st_ino == cached.stat().st_ino  # one write of the bytes
    assert (first / "w.bin").stat().st_mode & 0o777 == 0o444  # not edited in place by mistake
    copied = tmp_path / "copied"
    registry.json("pull", "acme/linked@v1", "-o", str(copied), "--copy")
    assert (copied / "w.bin").read_bytes() == data
    assert (copied / "w.bin").stat().st_ino != cached.stat().st_ino

    # a user forces an edit in place: the shared cache entry (and its other links) change
    (first / "w.bin").chmod(0o644)
    with (first / "w.bin").open("r+b") as f:
        f.write(b"edited")
    assert (first / "copy-of-w.bin").read_bytes().startswith(b"edited")
    second = tmp_path / "second"
    again = registry.json("pull", "acme/linked@v1", "-o", str(second))  # caught, fetched anew
    assert (second / "w.bin").read_bytes() == data
    assert (second / "copy-of-w.bin").read_bytes() == data
    assert again["downloaded_bytes"] == len(data)
    assert (copied / "w.bin").read_bytes() == data  # a --copy file is independent


def waiting_for_flock(pids: set[int]) -> set[int]:
    """Those of ``pids`` blocked in ``flock`` (Linux lists waiters in /proc/locks after
    ``->``: ``1: -> FLOCK ADVISORY WRITE <pid> <dev>:<inode> 0 EOF``)."""
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1:3] == ["->", "FLOCK"]:
            waiting.add(int(fields[5]))
    return waiting & pids


def test_concurrent_pulls_of_one_blob_share_the_cache_safely(
    registry: Registry, tmp_path: Path
) -> None:
    data = random.Random(12).randbytes(24 * MiB)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(data)
    registry.json("push", str(tmp_path / "m"), "--name", "acme/shared", "--version", "v1")
    partial = registry.home / "cache" / "partial" / digests(data).blake3.hex
    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("a+b") as held:  # all four start before any may download
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        pulls = [
            subprocess.Popen(
                [CLI, "pull", "acme/shared@v1", "-o", str(tmp_path / f"out-{i}"), "--json"],
                env=registry.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(4)
        ]
        pids, deadline = {p.pid for p in pulls}, time.monotonic() + 120
        while waiting_for_flock(pids) != pids:  # each waits for the blob's lock
            assert [p.poll() for p in pulls] == [None] * 4  # none went on without it
            assert time.monotonic() < deadline, f"only {waiting_for_flock(pids)} of {pids} wait"
            time.sleep(0.05)
    results = [p.communicate(timeout=300) for p in pulls]
    assert [p.returncode for p in pulls] == [0] * 4, [err for _, err in results]
    fetched = [json.loads(out)["downloaded_bytes"] for out, _ in results]
    assert sum(fetched) == len(data)  # one process downloaded it; the others waited for it
    for i in range(4):
        assert (tmp_path / f"out-{i}" / "w.bin").read_bytes() == data
    assert not list((registry.home / "cache" / "partial").iterdir())


def test_blob_gets_can_redirect_to_presigned_object_store_urls(
    deployment: Deployment, tmp_path: Path
) -> None:
    """RELIQUARY_S3_REDIRECT: the object store serves the bytes, the client still verifies
    every one, and the token never travels to the store."""
    if deployment.env["RELIQUARY_STORAGE"] != "s3":  # nothing to redirect to: refused
        with pytest.raises(ValueError, match="needs RELIQUARY_STORAGE=s3"):
            deployment.settings(RELIQUARY_S3_REDIRECT="5m")
        return
    with pytest.raises(ValueError, match="between 1m"):  # shorter URLs die of clock drift
        deployment.settings(RELIQUARY_S3_REDIRECT="30s")
    env = {**deployment.env, "RELIQUARY_S3_REDIRECT": "2m"}
    run_cli(env, "db", "upgrade")
    token = run_cli(env, "token", "create", "--role", "publisher").strip()
    proc = ServerProcess(env)
    proc.start()
    try:
        registry = Registry(proc, deployment, token, tmp_path / "home")
        model = make_model(tmp_path / "model", seed=9, big_bytes=3 * MiB)
        registry.json("push", str(model), "--name", "acme/redirected", "--version", "v1")
        weights = (model / "variables/variables.data-00000-of-00001").read_bytes()
        d = digests(weights)
        auth = {"authorization": f"Bearer {token}"}
        answer = httpx.get(f"{proc.url}/v1/blobs/{d.sha256}", headers=auth)
        assert answer.status_code == 307
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["reliquary-blake3"] == str(d.blake3)
        location = answer.headers["location"]
        assert location.startswith(env["RELIQUARY_S3_ENDPOINT_URL"])
        assert httpx.get(location).content == weights  # no credentials needed, for a while
        ranged = httpx.get(location, headers={"range": "bytes=10-19"})
        assert ranged.status_code == 206 and ranged.content == weights[10:20]
        assert httpx.get(f"{proc.url}/v1/blobs/{d.sha256}").status_code == 401

        out = tmp_path / "out"
        pulled = registry.json("pull", "acme/redirected@v1", "-o", str(out))
        assert pulled["downloaded_bytes"] == pulled["total_bytes"]
        assert tree(out) == tree(model)
        metrics = httpx.get(f"{proc.url}/metrics", headers=auth).text
        assert "reliquary_blob_redirects_total 6.0" in metrics  # the GET above + 5 files

        _tamper(registry, d.blake3.hex)  # the store serves other bytes: the pull refuses
        (tmp_path / "home" / "cache").rename(tmp_path / "old-cache")
        failed = registry.run("pull", "acme/redirected@v1", "-o", str(tmp_path / "o2"), check=False)
        assert failed.returncode == 4
        assert "variables/variables.data-00000-of-00001" in failed.stderr
    finally:
        proc.stop()
