"""Crashes leave nothing behind: ``kill -9`` the API at random points of concurrent
pushes, resumable uploads and promotes, restart it, and check what users rely on.

After every crash and restart: every acknowledged (2xx) blob, manifest, chunk and
promote is still there; every blob the registry serves hashes to its digest;
``reliquary-server fsck`` exits 0 once the restarted server's first reconciliation
pass is done; ``reliquary audit verify --all`` passes against the checkpoint pinned
before the crash; the log has every entry from 0 to its size. On the embedded
deployment no staged file survives the restart. Runs on both deployments; the moto
S3 server lives in the test process, so it survives the API's death.

``RELIQUARY_CRASH_SEED`` and ``RELIQUARY_CRASH_TRIALS`` replay or widen a run.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from blake3 import blake3

from tests.conftest import Deployment
from tests.support.content import digests, manifest_bytes
from tests.support.s3 import endpoint_of, s3_client
from tests.support.server import CLI, SERVER, ServerProcess, run_cli

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("RELIQUARY_CRASH_SEED", "20261130"))
TRIALS = int(os.environ.get("RELIQUARY_CRASH_TRIALS", "5"))
MiB = 1024 * 1024
CHANNEL = "staging"


@dataclass
class Ledger:
    """What the clients sent and what the registry acknowledged, across all trials."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    blobs_tried: dict[str, int] = field(default_factory=dict)  # blake3 hex -> size
    blobs_acked: dict[str, int] = field(default_factory=dict)
    manifests_acked: dict[str, bytes] = field(default_factory=dict)  # blake3 digest -> bytes
    to_promote: list[tuple[str, str]] = field(default_factory=list)  # (name, digest)
    promotes_tried: dict[str, list[str]] = field(default_factory=dict)  # name -> digests sent
    promotes_acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> last
    chunks_acked: dict[str, tuple[int, str]] = field(default_factory=dict)  # URL -> offset, blob
    surprises: list[str] = field(default_factory=list)  # answers no crash explains

    def note(self, table: dict[str, int], key: str, value: int) -> None:
        with self.lock:
            table[key] = value


@dataclass
class Clients:
    base_url: str
    publisher: str
    governor: str
    reader: str

    def http(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"authorization": f"Bearer {token}"}, timeout=30
        )


def expect(ledger: Ledger, response: httpx.Response, *ok: int) -> bool:
    """True for an acknowledgement; any other answer is recorded as a surprise."""
    if response.status_code in ok:
        return True
    with ledger.lock:
        ledger.surprises.append(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code} {response.text[:300]}"
        )
    return False


def until_the_crash(work: Callable[[], None], stop: threading.Event) -> None:
    """Repeat ``work`` until ``stop`` or until the server dies under it."""
    try:
        while not stop.is_set():
            work()
    except httpx.TransportError:
        pass  # killed mid-request: no answer is no acknowledgement


def pusher(clients: Clients, ledger: Ledger, rng: random.Random, tag: str) -> Callable[[], None]:
    http = clients.http(clients.publisher)
    count = iter(range(10**6))

    def push() -> None:
        n = next(count)
        files = {
            "config.json": rng.randbytes(rng.randint(10, 4000)),
            "weights.bin": rng.randbytes(rng.randint(1 * MiB, 24 * MiB)),
        }
        for data in files.values():
            b3 = digests(data).blake3
            ledger.note(ledger.blobs_tried, b3.hex, len(data))
            if expect(ledger, http.put(f"/v1/blobs/{b3}", content=data), 200, 201):
                ledger.note(ledger.blobs_acked, b3.hex, len(data))
        name = f"crash/model-{n % 3}"
        raw = manifest_bytes(name, f"v{tag}-{n}", files)
        if expect(ledger, http.put("/v1/artifacts", content=raw), 200, 201):
            digest = str(digests(raw).blake3)
            with ledger.lock:
                ledger.manifests_acked[digest] = raw
                ledger.to_promote.append((name, digest))

    return push


def uploader(clients: Clients, ledger: Ledger, rng: random.Random) -> Callable[[], None]:
    http = clients.http(clients.publisher)

    def upload() -> None:
        data = rng.randbytes(rng.randint(2 * MiB, 12 * MiB))
        b3 = digests(data).blake3
        ledger.note(ledger.blobs_tried, b3.hex, len(data))
        started = http.post("/v1/uploads")
        if not expect(ledger, started, 201):
            return
        url = started.headers["location"]
        offset = 0
        while offset < len(data):
            chunk = data[offset : offset + rng.randint(MiB // 2, 3 * MiB)]
            sent = http.patch(url, content=chunk, headers={"upload-offset": str(offset)})
            if not expect(ledger, sent, 204):
                return
            offset = int(sent.headers["upload-offset"])
            with ledger.lock:
                ledger.chunks_acked[url] = (offset, b3.hex)
        if expect(ledger, http.put(url, params={"digest": str(b3)}), 200, 201):
            ledger.note(ledger.blobs_acked, b3.hex, len(data))
            with ledger.lock:
                del ledger.chunks_acked[url]

    return upload


def promoter(clients: Clients, ledger: Ledger) -> Callable[[], None]:
    http = clients.http(clients.governor)

    def promote() -> None:
        with ledger.lock:
            job = ledger.to_promote.pop(0) if ledger.to_promote else None
            if job is not None:
                ledger.promotes_tried.setdefault(job[0], []).append(job[1])
        if job is None:
            time.sleep(0.05)
            return
        name, digest = job
        body = {"name": name, "channel": CHANNEL, "digest": digest, "reason": "crash test"}
        answer = http.post("/v1/channels/promote", json=body)
        if expect(ledger, answer, 200):
            with ledger.lock:
                ledger.promotes_acked[name] = (digest, answer.json()["log_index"])

    return promote


def metric(url: str, series: str) -> float:
    """One series of the server's /metrics (0 when absent)."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


FIRST_PASS = 'reliquary_store_reconcile_runs_total{outcome="ok"}'
RECONCILED = ("orphan_recorded", "orphan_removed", "staged_write", "unowned_upload")


def wait_for(check: Callable[[], bool], what: str, timeout_seconds: float = 60) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_seconds} s")
        time.sleep(0.1)


def served_hash(http: httpx.Client, blake3_hex: str) -> str | None:
    """blake3 of what GET serves for the blob, or None when it is not there."""
    with http.stream("GET", f"/v1/blobs/blake3:{blake3_hex}") as answer:
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, (blake3_hex, answer.status_code)
        hasher = blake3()
        for chunk in answer.iter_bytes():
            hasher.update(chunk)
        return str(hasher.hexdigest())


def log_entries(http: httpx.Client) -> Iterator[tuple[int, str, dict[str, object]]]:
    size = int(http.get("/v1/log/checkpoint").text.splitlines()[1])
    for start in range(0, size, 1000):
        page = http.get("/v1/log/entries", params={"start": start, "end": min(size, start + 1000)})
        assert page.status_code == 200, page.text
        for item in page.json()["entries"]:
            yield item["index"], item["kind"], json.loads(base64.b64decode(item["entry"]))


def check_after_restart(
    clients: Clients,
    ledger: Ledger,
    checked_blobs: set[str],
    deployment: Deployment,
    client_env: dict[str, str],
) -> None:
    """Everything the module docstring promises, on the restarted server."""
    assert not ledger.surprises, ledger.surprises
    http = clients.http(clients.reader)
    # acknowledged blobs are there; every blob served, acknowledged or not, is whole
    for blake3_hex, size in list(ledger.blobs_tried.items()):
        if blake3_hex in checked_blobs:
            assert http.head(f"/v1/blobs/blake3:{blake3_hex}").status_code == 200
            continue
        served = served_hash(http, blake3_hex)
        if served is None:
            assert blake3_hex not in ledger.blobs_acked, f"acknowledged blob {blake3_hex} lost"
            continue
        assert served == blake3_hex, f"blob {blake3_hex} ({size} bytes) served partial"
        checked_blobs.add(blake3_hex)
    for digest, raw in ledger.manifests_acked.items():
        assert http.get(f"/v1/artifacts/{digest}").content == raw, digest
    owner = clients.http(clients.publisher)  # a session answers only its own token
    for url, (offset, blake3_hex) in ledger.chunks_acked.items():
        resumed = owner.head(url)
        if resumed.status_code == 404:  # its commit ran, unanswered: the blob is whole
            assert blake3_hex in checked_blobs, f"{url} and its blob {blake3_hex} are gone"
            continue
        assert resumed.status_code == 200, (url, resumed.status_code)
        assert int(resumed.headers["upload-offset"]) >= offset, (url, offset)
    # the log has no gap, and every acknowledged promote is in it and in force
    entries = {index: (kind, entry) for index, kind, entry in log_entries(http)}
    assert sorted(entries) == list(range(len(entries))), "the log has a gap"
    for name, (digest, log_index) in ledger.promotes_acked.items():
        kind, entry = entries[log_index]
        assert (kind, entry["name"], entry["to"]) == ("channel.promote", name, digest)
        pointers = {p["channel"]: p["digest"] for p in http.get(f"/v1/channels?name={name}").json()}
        tried = ledger.promotes_tried[name]
        later = tried[tried.index(digest) :]  # an unacknowledged later promote may have landed
        assert any(d.endswith(pointers[CHANNEL].rsplit(":", 1)[-1]) for d in later), name
    if deployment.name == "embedded":  # no partial write outlives its process
        staging = Path(deployment.env["RELIQUARY_DATA_DIR"]) / "blobs" / "_staging"
        assert list(staging.iterdir()) == []
    fsck = subprocess.run(
        [SERVER, "fsck"],
        env={**os.environ, **deployment.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    audit = subprocess.run(
        [CLI, "audit", "verify", "--all"],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr


def run_until_killed(proc: ServerProcess, workers: list[Callable[[], None]], delay: float) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=until_the_crash, args=(w, stop)) for w in workers]
    for thread in threads:
        thread.start()
    time.sleep(delay)
    proc.stop(kill=True)  # SIGKILL, whatever is in flight
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()


def test_kill_9_at_random_points_loses_nothing_acknowledged_and_leaves_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}-{deployment.name}")
    run_cli(deployment.env, "db", "upgrade")
    tokens = {
        role: run_cli(deployment.env, "token", "create", "--role", role).strip()
        for role in ("publisher", "governor", "reader")
    }
    proc = ServerProcess(deployment.env)
    clients = Clients(proc.url, tokens["publisher"], tokens["governor"], tokens["reader"])
    client_env = {k: v for k, v in os.environ.items() if k != "RELIQUARY_CONFIG"}
    client_env |= {
        "RELIQUARY_URL": proc.url,
        "RELIQUARY_TOKEN": tokens["reader"],
        "XDG_CONFIG_HOME": str(tmp_path / "auditor"),  # the pinned checkpoint lives here
    }
    ledger = Ledger()
    checked: set[str] = set()
    found = dict.fromkeys(RECONCILED, 0.0)  # what the restarts put right, for the record
    proc.start()
    try:
        for trial in range(TRIALS):
            workers = [
                pusher(clients, ledger, random.Random(rng.random()), f"{trial}a"),
                pusher(clients, ledger, random.Random(rng.random()), f"{trial}b"),
                uploader(clients, ledger, random.Random(rng.random())),
                promoter(clients, ledger),
            ]
            run_until_killed(proc, workers, delay=rng.uniform(0.4, 2.5))
            proc.start()
            wait_for(lambda: metric(proc.url, FIRST_PASS) >= 1, "the restarted server's 1st pass")
            for what in RECONCILED:
                found[what] += metric(
                    proc.url, f'reliquary_store_reconciled_total{{what="{what}"}}'
                )
            check_after_restart(clients, ledger, checked, deployment, client_env)
    finally:
        proc.stop()
    print(f"{TRIALS} crashes (seed {SEED}) on {deployment.name}; the restarts reconciled {found}")
    assert ledger.blobs_acked and ledger.manifests_acked and ledger.promotes_acked
    if deployment.name == "production":  # what S3 still holds of killed writes is swept
        time.sleep(2.1)  # idle one second on S3's clock, which ticks in whole seconds
        run_cli({**deployment.env, "RELIQUARY_UPLOAD_TTL": "1s"}, "fsck")
        endpoint = endpoint_of(deployment.env)
        bucket = deployment.env["RELIQUARY_S3_BUCKET"]
        s3 = s3_client(endpoint)
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        staged = s3.list_objects_v2(Bucket=bucket, Prefix="_staging/").get("Contents", [])
        assert staged == []
