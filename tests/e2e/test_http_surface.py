"""What any HTTP client sees of a real server: media types and the methods each path takes."""

from __future__ import annotations

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

DIGEST = "blake3:" + "0" * 64

# every method each path takes (OPTIONS included), as the API table in ARCHITECTURE §10 says
PATHS = {
    f"/v1/blobs/{DIGEST}": {"HEAD", "GET", "PUT", "OPTIONS"},
    "/v1/uploads": {"POST", "OPTIONS"},
    "/v1/uploads/0123abcd": {"HEAD", "PATCH", "PUT", "DELETE", "OPTIONS"},
    "/v1/artifacts": {"GET", "PUT", "OPTIONS"},
    f"/v1/artifacts/{DIGEST}": {"GET", "OPTIONS"},
    f"/v1/artifacts/{DIGEST}/attestations": {"GET", "POST", "OPTIONS"},
    "/v1/tokens": {"GET", "POST", "OPTIONS"},
    "/v1/keys": {"GET", "POST", "OPTIONS"},
    "/v1/jobs/claim": {"POST", "OPTIONS"},
    "/v1/log/checkpoint": {"GET", "OPTIONS"},
}


def methods(allow: str) -> set[str]:
    return {m.strip() for m in allow.split(",")}


def test_text_answers_name_their_charset_once(server: tuple[ServerProcess, str]) -> None:
    proc, _ = server
    for path in ("/v1/log/checkpoint", "/v1/log/key"):
        answer = httpx.get(proc.url + path)
        assert answer.status_code == 200
        assert answer.headers.get_list("content-type") == ["text/plain; charset=utf-8"]
    metrics = httpx.get(proc.url + "/metrics").headers["content-type"]
    assert metrics.startswith("text/plain; version=")
    assert metrics.count("charset=") == 1


def test_options_and_405_name_every_method_of_the_path(server: tuple[ServerProcess, str]) -> None:
    proc, admin = server
    auth = {"authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=proc.url, headers=auth) as http:
        for path, expected in PATHS.items():
            options = http.options(path)
            assert options.status_code == 204, path
            assert methods(options.headers["allow"]) == expected, path
            unused = next(m for m in ("DELETE", "PATCH", "POST", "PUT") if m not in expected)
            refused = http.request(unused, path)
            assert refused.status_code == 405, (unused, path)
            assert refused.headers["content-type"] == "application/problem+json"
            assert methods(refused.headers["allow"]) == expected, (unused, path)
