"""The malformed-input cases against a real ``reliquary-server`` process.

In-process test clients re-encode header values as UTF-8, so a Latin-1 byte such as
``\\xb2`` ('²', which ``str.isdigit()`` accepts) reaches the app only through a real
HTTP server; this sends every case in ``tests/support/malformed.py`` over a socket,
bytes as they are, and checks each answer is the expected 4xx problem+json and that
the database did not change.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Deployment
from tests.support.database import database_rows
from tests.support.malformed import CASES, prepare, send
from tests.support.server import ServerProcess, run_cli

pytestmark = pytest.mark.slow

ROLES = ("reader", "publisher", "worker", "governor")


@pytest.fixture
def server(deployment: Deployment) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    admin = run_cli(deployment.env, "token", "create", "--role", "admin").strip()
    proc = ServerProcess(deployment.env)
    proc.start()
    try:
        tokens = {"admin": admin}
        for role in ROLES:
            issued = httpx.post(
                f"{proc.url}/v1/tokens",
                json={"role": role},
                headers={"authorization": f"Bearer {admin}"},
            )
            tokens[role] = issued.json()["token"]
        yield proc, tokens
    finally:
        proc.stop()


def test_every_malformed_case_is_refused_by_a_real_server(
    server: tuple[ServerProcess, dict[str, str]], deployment: Deployment
) -> None:
    proc, tokens = server
    failures: list[str] = []
    with httpx.Client(base_url=proc.url, timeout=60) as http:
        targets = prepare(http, tokens)
        before = database_rows(deployment.engine)
        for case in CASES:
            answer = send(http, case, targets, tokens)
            media = answer.headers.get("content-type", "")
            if answer.status_code not in case.expect or not media.startswith(
                "application/problem+json"
            ):
                failures.append(f"{case.id}: {answer.status_code} {answer.text[:200]}")
            if database_rows(deployment.engine) != before:
                failures.append(f"{case.id}: changed the database")
                before = database_rows(deployment.engine)
    assert not failures, "\n".join(failures)
