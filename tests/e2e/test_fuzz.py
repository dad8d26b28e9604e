"""A fuzzer walks a real server's OpenAPI document, on both deployments.

A client author who trusts /schema/openapi.json must not be able to make the
registry answer 5xx, nor an error that is not a problem. Schemathesis loads the
document over HTTP from a ``reliquary-server serve`` process and runs examples,
coverage, generated requests and stateful link sequences with a fixed seed and a
bounded number of examples per operation, as an admin so that it reaches past auth
(tests/support/fuzz.py). Then the malformed inputs that once answered 500
(tests/support/malformed.py) are replayed against the same process.
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.support.fuzz import FUZZ_SEED, Request, fuzz, replay
from tests.support.malformed import CASES, prepare
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

# ~2 800 cases per deployment, 20-45 s each on 2 cores; the environment can ask for a
# harder or a different run (RELIQUARY_FUZZ_EXAMPLES=500 RELIQUARY_FUZZ_SEED=7)
EXAMPLES_PER_OPERATION = int(os.environ.get("RELIQUARY_FUZZ_EXAMPLES", "40"))
SEED = int(os.environ.get("RELIQUARY_FUZZ_SEED", str(FUZZ_SEED)))


def test_fuzzing_the_document_finds_no_server_error_and_only_problems(
    server: tuple[ServerProcess, str],
) -> None:
    proc, admin = server
    report = fuzz(proc.url, admin, seed=SEED, max_examples=EXAMPLES_PER_OPERATION)
    print(report.summary())  # size and time of the run, in the test's output
    assert report.errors == [], report.summary()
    assert report.failures == [], report.summary()
    assert report.phases == {
        "probing": "success",
        "schema_analysis": "success",
        "auth_bootstrap": "success",
        "examples": "success",
        "coverage": "success",
        "fuzzing": "success",
        "stateful": "success",
    }, report.summary()
    assert report.cases >= 2000, report.summary()
    # it ran as admin throughout: the token it was given still works
    auth = {"authorization": f"Bearer {admin}"}
    assert httpx.get(f"{proc.url}/v1/tokens", headers=auth).status_code == 200


def test_the_malformed_inputs_as_explicit_cases_answer_documented_problems(
    server: tuple[ServerProcess, str],
) -> None:
    """Each case of tests/support/malformed.py (and the NUL cases a longer fuzz run found),
    sent as an explicit schemathesis case: the answer is a 4xx problem of a documented
    status, media type and Problem type."""
    proc, admin = server
    with httpx.Client(base_url=proc.url, timeout=120) as client:
        auth = {"authorization": f"Bearer {admin}"}
        tokens = {"admin": admin}
        for role in ("publisher", "worker", "governor", "reader"):
            issued = client.post("/v1/tokens", json={"role": role}, headers=auth)
            tokens[role] = issued.json()["token"]
        targets = prepare(client, tokens)
        size = client.get("/v1/log/checkpoint").text.split("\n")[1]
    requests = [
        Request(
            case.id,
            case.method,
            case.path.format(**targets),
            {**case.headers, "authorization": f"Bearer {tokens[case.role]}".encode()},
            case.body,
            case.expect,
        )
        for case in CASES
    ]
    admin_json = {"authorization": f"Bearer {admin}".encode(), "content-type": b"application/json"}
    requests += [  # what a longer fuzz run found: NUL, which PostgreSQL cannot hold
        Request(
            "nul-in-query",
            "GET",
            f"/v1/artifacts/{targets['artifact']}/attestations?predicate_type=%00x",
            admin_json,
        ),
        Request("nul-in-path", "DELETE", "/v1/uploads/%00abc", admin_json),
        Request(
            "nul-in-json",
            "POST",
            "/v1/tokens",
            admin_json,
            b'{"role":"reader","description":"\\u0000"}',
        ),
    ]
    assert len(requests) >= 30
    assert replay(proc.url, admin, requests) == []
    with httpx.Client(base_url=proc.url, timeout=30) as client:  # nothing was logged
        assert client.get("/v1/log/checkpoint").text.split("\n")[1] == size
