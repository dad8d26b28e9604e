"""A client that sends its headers slowly (slowloris) cannot hold a connection.

A real ``reliquary-server serve`` process with ``RELIQUARY_HEADER_TIMEOUT=2s``,
driven over raw sockets.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.content import digests
from tests.support.server import ServerProcess, run_cli

pytestmark = pytest.mark.slow

TIMEOUT = 2.0
MARGIN = 2.0  # scheduling on a shared 2-core machine


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    env = {"RELIQUARY_DATA_DIR": str(tmp_path / "data"), "RELIQUARY_HEADER_TIMEOUT": "2s"}
    run_cli(env, "db", "upgrade")
    token = run_cli(env, "token", "create", "--role", "publisher").strip()
    proc = ServerProcess(env)
    proc.start()
    try:
        yield proc, token
    finally:
        proc.stop()


def trickle(
    sock: socket.socket, pieces: list[bytes], every: float, limit: float
) -> tuple[float, bytes]:
    """Send ``pieces`` one per ``every`` seconds until the server answers or hangs up;
    seconds until it did (``limit`` if it never did) and what it answered."""
    started = time.monotonic()
    answer = b""
    sock.settimeout(every)
    for piece in [*pieces, *[b"X-Slow: 1\r\n"] * 1000]:
        if time.monotonic() - started > limit:
            return limit, answer
        try:
            sock.sendall(piece)
        except OSError:  # reset or broken pipe: the server hung up
            return time.monotonic() - started, answer
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started, answer
        answer += data
        if not data:
            return time.monotonic() - started, answer
        while data:  # the answer, then the close
            try:
                data = sock.recv(65536)
            except OSError:
                break
            answer += data
        return time.monotonic() - started, answer
    return limit, answer


def connect(proc: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proc.port), timeout=10)


def test_headers_sent_a_line_at_a_time_are_cut_off_at_the_timeout(
    server: tuple[ServerProcess, str],
) -> None:
    proc, _ = server
    with connect(proc) as slow:
        pieces = [b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n"]
        held, answer = trickle(slow, pieces, every=0.5, limit=20)
        # meanwhile another connection is served normally
        assert httpx.get(f"{proc.url}/healthz").status_code == 200
    assert TIMEOUT - 0.5 <= held <= TIMEOUT + MARGIN
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["status"] == 408


def test_a_request_line_sent_a_byte_at_a_time_is_cut_off(
    server: tuple[ServerProcess, str],
) -> None:
    proc, _ = server
    with connect(proc) as slow:
        held, answer = trickle(slow, [bytes([b]) for b in b"GET /healthz HTTP/1.1\r\n"], 0.3, 20)
    assert held <= TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_closed(server: tuple[ServerProcess, str]) -> None:
    proc, _ = server
    with connect(proc) as idle:
        started = time.monotonic()
        idle.settimeout(TIMEOUT + MARGIN + 5)
        answer = idle.recv(65536)
        while chunk := idle.recv(65536):
            answer += chunk
        assert time.monotonic() - started <= TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(
    server: tuple[ServerProcess, str],
) -> None:
    proc, _ = server
    with connect(proc) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = sock.recv(65536)
        while not first.endswith(b"}"):  # the whole first answer, its body too
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        held, answer = trickle(sock, [b"GET /healthz HTTP/1.1\r\n"], every=0.5, limit=20)
    assert held <= TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_a_slow_body_after_timely_headers_is_not_cut(server: tuple[ServerProcess, str]) -> None:
    proc, token = server
    data = b"weights " * 1000
    blake3 = digests(data).blake3
    with connect(proc) as sock:
        sock.sendall(
            f"PUT /v1/blobs/{blake3} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data[:100]
        )
        time.sleep(TIMEOUT + 1)  # the body takes longer than the header deadline
        sock.sendall(data[100:])
        sock.settimeout(10)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 201 "), answer
