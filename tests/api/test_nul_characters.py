"""A NUL character (U+0000) in a path, a query parameter or a JSON body is a 400 problem.

Found by the fuzzer (tests/e2e/test_fuzz.py): PostgreSQL cannot store or compare text
holding NUL, so each of these answered 500 on the production deployment while SQLite
took them (a token described "a\\u0000b" was issued there). Now both refuse them alike,
before anything is written.
"""

from __future__ import annotations

import pytest

from registry.core.roles import Role
from tests.conftest import Api

D = "blake3:" + "0" * 64
JSON = {"content-type": "application/json"}

CASES = [
    ("GET", "/v1/artifacts?name=%00", None),
    ("GET", "/v1/artifacts?kind=model&kind=%00", None),
    ("GET", "/v1/artifacts?label=team%3D%00", None),
    ("GET", "/v1/resolve?name=a%00&version=v1", None),
    ("GET", f"/v1/artifacts/{D}/attestations?predicate_type=%00x", None),
    ("HEAD", "/v1/uploads/%00abc", None),
    ("PATCH", "/v1/uploads/%00abc", b"x"),
    ("DELETE", "/v1/uploads/%00abc", None),
    ("DELETE", "/v1/tokens/%00abc", None),
    ("POST", "/v1/jobs/%00abc/heartbeat", None),
    ("POST", "/v1/jobs/%00abc/fail", b'{"error": "x"}'),
    ("POST", "/v1/tokens", b'{"role": "reader", "description": "a\\u0000b"}'),
    ("POST", "/v1/jobs/claim", b'{"profiles": ["cpu-tensorflow"], "worker": "w\\u0000"}'),
    ("POST", "/v1/keys", b'{"public_key": "k", "role": "worker", "description": "\\u0000"}'),
]


@pytest.mark.parametrize(("method", "path", "body"), CASES)
def test_nul_is_refused_before_anything_happens(
    api: Api, method: str, path: str, body: bytes | None
) -> None:
    headers = {**api.auth(Role.ADMIN), **JSON, "upload-offset": "0"}
    tokens_before = api.client.get("/v1/tokens", headers=api.auth(Role.ADMIN)).json()
    answer = api.client.request(method, path, content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    if method != "HEAD":
        assert "NUL" in answer.json()["detail"]
    assert api.client.get("/v1/tokens", headers=api.auth(Role.ADMIN)).json() == tokens_before


def test_a_backslash_u_text_is_not_a_nul(api: Api) -> None:
    body = b'{"role": "reader", "description": "C:\\\\u0000 is text"}'
    answer = api.client.post("/v1/tokens", content=body, headers={**api.auth(Role.ADMIN), **JSON})
    assert answer.status_code == 201
    assert answer.json()["description"] == "C:\\u0000 is text"
