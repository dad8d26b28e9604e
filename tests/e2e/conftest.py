"""A real ``reliquary-server serve`` process on each deployment, with an admin token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Deployment
from tests.support.server import ServerProcess, run_cli


@pytest.fixture
def server(deployment: Deployment) -> Iterator[tuple[ServerProcess, str]]:
    run_cli(deployment.env, "db", "upgrade")
    admin = run_cli(deployment.env, "token", "create", "--role", "admin").strip()
    with ServerProcess(deployment.env) as proc:
        yield proc, admin
