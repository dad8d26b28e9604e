"""Registries that lie or fail: real HTTP servers on loopback that answer from a script,
for the clients' checks of what a server answers (they never trust it).

``fake_registry`` answers each ``METHOD path`` (query left out) from a list of answers
and records what it was asked; ``lying_registry`` answers each GET of a path (query
included) with the one answer the test put there. Both serve until their ``with`` ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class FakeRegistry:
    """A real HTTP server on loopback answering each ``METHOD path`` from a script."""

    answers: dict[str, list[Answer]]
    seen: list[str] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)  # each request's authorization
    url: str = ""


@contextmanager
def fake_registry(answers: dict[str, list[Answer]]) -> Iterator[FakeRegistry]:
    """Serve ``answers`` (each key's list in order, its last answer repeating; else 404)."""
    fake = FakeRegistry(answers)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        timeout = 10

        def _answer(self) -> None:
            key = f"{self.command} {self.path.split('?')[0]}"
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            with lock:
                fake.seen.append(key)
                fake.tokens.append(self.headers.get("authorization"))
                script = fake.answers.get(key, [(404, {}, b"")])
                status, headers, body = script.pop(0) if len(script) > 1 else script[0]
            self.send_response(status)
            for name, value in {"content-length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


LyingAnswer = tuple[int, str, bytes]
"""Status, content type, body."""


class _LyingHandler(BaseHTTPRequestHandler):
    """Serves whatever ``answers`` maps a path to (status, content type, body)."""

    answers: dict[str, LyingAnswer] = {}

    def do_GET(self) -> None:
        status, ctype, body = self.answers.get(self.path, (404, "application/json", b"{}"))
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def lying_registry() -> Iterator[tuple[str, dict[str, LyingAnswer]]]:
    """Serve GETs from the answers dict it yields (with its URL); unknown paths answer 404."""
    answers: dict[str, LyingAnswer] = {}
    handler = type("Handler", (_LyingHandler,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()
