"""A worker long-polls its claims, and gives that up only for a registry that does not
know ``wait_seconds``: any other refused claim is retried, still long-polled.

The registry here is a stand-in HTTP server that answers claims from a script (the
worker's side of the protocol is what is under test), so no registry process starts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clients.cache import BlobCache
from clients.client import RegistryClient
from registry.core.keys import SigningKey
from workers.loop import Worker
from workers.profiles import PROFILES
from workers.runs import WorkerOptions

Answer = tuple[int, dict[str, Any] | None]
UNKNOWN_FIELD: Answer = (  # what a registry older than long polling answers
    400,
    {
        "type": "https://reliquary.dev/problems/invalid-request",
        "title": "Validation",
        "status": 400,
        "detail": "Validation failed for POST /v1/jobs/claim",
        "errors": [{"message": "Object contains unknown field `wait_seconds`", "key": "data"}],
    },
)
OTHER_REFUSAL: Answer = (
    400,
    {
        "type": "https://reliquary.dev/problems/invalid-json",
        "title": "Invalid JSON",
        "status": 400,
        "detail": "a JSON string holds a NUL character (\\u0000)",
    },
)


class ScriptedRegistry:
    """Answers each claim with ``answer(body)``; claims are recorded in order."""

    def __init__(self, answer: Callable[[dict[str, Any]], Answer]) -> None:
        self.claims: list[dict[str, Any]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                scripted.claims.append(body)
                status, problem = answer(body)
                content = b"" if problem is None else json.dumps(problem).encode()
                self.send_response(status)
                if problem is not None:
                    self.send_header("content-type", "application/problem+json")
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ScriptedRegistry:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_worker(tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    clients: list[RegistryClient] = []

    def make(url: str) -> Worker:
        client = RegistryClient(url, "rlq_worker", max_retries=0)
        clients.append(client)
        options = WorkerOptions(
            PROFILES["cpu-tensorflow"],
            SigningKey.generate(),
            tmp_path / "work",
            BlobCache(tmp_path / "cache"),
        )
        return Worker(client, options, name="w", poll_seconds=0.01, wait_seconds=20.0)

    yield make
    for client in clients:
        client.close()


def test_a_registry_that_does_not_know_wait_seconds_is_polled(
    make_worker: Callable[[str], Worker],
) -> None:
    worker: Worker | None = None

    def answer(body: dict[str, Any]) -> Answer:
        if "wait_seconds" in body:
            return UNKNOWN_FIELD
        assert worker is not None
        worker.stopping.set()
        return 204, None

    with ScriptedRegistry(answer) as registry:
        worker = make_worker(registry.url)
        assert worker.run() == 0

    assert [("wait_seconds" in claim) for claim in registry.claims] == [True, False]
    assert worker.wait_seconds == 0


def test_any_other_refused_claim_is_retried_still_long_polled(
    make_worker: Callable[[str], Worker],
) -> None:
    worker: Worker | None = None

    def answer(_: dict[str, Any]) -> Answer:
        assert worker is not None
        if len(registry.claims) < 3:
            return OTHER_REFUSAL
        worker.stopping.set()
        return 204, None

    with ScriptedRegistry(answer) as registry:
        worker = make_worker(registry.url)
        assert worker.run() == 0

    assert [claim.get("wait_seconds") for claim in registry.claims] == [20.0, 20.0, 20.0]
    assert worker.wait_seconds == 20.0
