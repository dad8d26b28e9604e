"""An idle worker's claims: long-polled, woken by new jobs, and kept out of the console.

Real ``reliquary-server serve`` processes (two replicas on one database for the
poll), driven over HTTP and raw sockets; the access log is read from stderr.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Deployment
from tests.support.content import digests, manifest_bytes
from tests.support.server import ServerProcess, run_cli

pytestmark = pytest.mark.slow

PROFILES = ["cpu-tensorflow"]
CLAIM_LINE = '"POST /v1/jobs/claim HTTP/1.1"'


@dataclass
class Registry:
    env: dict[str, str]
    tokens: dict[str, str]
    servers: list[ServerProcess]

    @property
    def url(self) -> str:
        return self.servers[0].url

    def auth(self, role: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[role]}"}

    def start(self, **options: Any) -> ServerProcess:
        proc = ServerProcess(self.env, **options)
        self.servers.append(proc)
        proc.start()
        return proc

    def claim(self, wait_seconds: float, url: str | None = None) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        answer = httpx.post(
            f"{url or self.url}/v1/jobs/claim",
            json={"profiles": PROFILES, "worker": "w", "wait_seconds": wait_seconds},
            headers=self.auth("worker"),
            timeout=60,
        )
        return answer, time.monotonic() - started

    def push(self, version: str) -> str:
        data = f"weights {version}".encode()
        with httpx.Client(base_url=self.url, headers=self.auth("publisher"), timeout=30) as http:
            assert http.put(f"/v1/blobs/{digests(data).blake3}", content=data).is_success
            pushed = http.put(
                "/v1/artifacts", content=manifest_bytes("acme/m", version, {"w": data})
            )
            assert pushed.is_success, pushed.text
            return str(pushed.json()["digest"])

    def request_job(self, digest: str, url: str | None = None) -> str:
        answer = httpx.post(
            f"{url or self.url}/v1/artifacts/{digest}/verify",
            json={"profile": PROFILES[0]},
            headers=self.auth("publisher"),
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()[0]["id"])


@pytest.fixture
def registry(deployment: Deployment) -> Iterator[Callable[..., Registry]]:
    made: list[Registry] = []

    def start(**options: Any) -> Registry:
        env = {**deployment.env, **options.pop("env", {})}
        run_cli(env, "db", "upgrade")
        tokens = {
            role: run_cli(env, "token", "create", "--role", role).strip()
            for role in ("publisher", "worker")
        }
        reg = Registry(env, tokens, [])
        made.append(reg)
        reg.start(**options)
        return reg

    try:
        yield start
    finally:
        for reg in made:
            for proc in reg.servers:
                proc.stop()


def in_background(call: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``call`` in a thread; the returned function joins it and gives its result."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()

    def join() -> Any:
        thread.join(timeout=60)
        return result[0]

    return join


def test_an_idle_claim_waits_then_answers_204(registry: Callable[..., Registry]) -> None:
    reg = registry()
    answer, took = reg.claim(1.5)
    assert answer.status_code == 204
    assert 1.4 <= took < 4
    answer, took = reg.claim(0)  # no wait: at once, as before
    assert answer.status_code == 204 and took < 1
    refused, _ = reg.claim(31)
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"


def test_a_job_queued_during_the_wait_is_claimed_at_once(
    registry: Callable[..., Registry],
) -> None:
    reg = registry()
    digest = reg.push("v1")
    waiting = in_background(lambda: reg.claim(20))
    time.sleep(1)
    job_id = reg.request_job(digest)
    queued = time.monotonic()
    answer, took = waiting()
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == job_id
    assert 1 <= took < 20
    assert time.monotonic() - queued < 2  # woken by the enqueue, not by the end of the wait


def test_a_job_queued_through_another_replica_is_found_by_polling(
    registry: Callable[..., Registry],
) -> None:
    reg = registry()
    other = reg.start()  # a second API process on the same database and store
    digest = reg.push("v1")
    waiting = in_background(lambda: reg.claim(20))
    time.sleep(1)
    job_id = reg.request_job(digest, url=other.url)
    queued = time.monotonic()
    answer, _ = waiting()
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == job_id
    assert time.monotonic() - queued < 4  # polled within a second or so, not after 20


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_idle_claims_stay_out_of_the_access_log(
    registry: Callable[..., Registry], tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    reg = registry(log_level="info", output=log)  # access lines go to stdout
    for wait in (0, 0, 0):
        assert reg.claim(wait)[0].status_code == 204
    assert httpx.get(f"{reg.url}/healthz").status_code == 200
    reg.request_job(reg.push("v1"))
    assert reg.claim(0)[0].status_code == 200
    assert reg.claim(0)[0].status_code == 204  # this worker holds the only job
    reg.servers[0].stop()
    lines = log.read_text().splitlines()
    claims = [line.split(CLAIM_LINE)[1].split()[0] for line in lines if CLAIM_LINE in line]
    assert claims == ["200"]  # the idle ones (204) are not logged
    assert [line for line in lines if '"GET /healthz HTTP/1.1" 200' in line]


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_long_poll_outlasts_the_header_timeout(registry: Callable[..., Registry]) -> None:
    reg = registry(env={"RELIQUARY_HEADER_TIMEOUT": "1s"})
    answer, took = reg.claim(3)
    assert answer.status_code == 204
    assert took >= 2.9


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_worker_that_hangs_up_ends_its_wait(registry: Callable[..., Registry]) -> None:
    reg = registry()
    proc = reg.servers[0]
    body = b'{"profiles": ["cpu-tensorflow"], "wait_seconds": 30}'
    with socket.create_connection(("127.0.0.1", proc.port)) as sock:
        sock.sendall(
            b"POST /v1/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {reg.tokens['worker']}\r\n".encode()
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        time.sleep(1)
    # uvicorn stops only once every request has finished: the abandoned claim must end
    started = time.monotonic()
    proc.stop()
    assert time.monotonic() - started < 6
