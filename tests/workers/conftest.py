"""The ``start_registry`` fixture: a registry process with a reproducibility policy, and
workers as real processes (``tests.support.workers``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Deployment
from tests.support.server import ServerProcess, run_cli
from tests.support.workers import Registry


@pytest.fixture
def start_registry(deployment: Deployment, tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    started: list[Registry] = []

    def start(policy: bytes, **env: str) -> Registry:
        policy_file = tmp_path / "policy.toml"
        policy_file.write_bytes(policy)
        tokens = {
            role: run_cli(deployment.env, "token", "create", "--role", role).strip()
            for role in ("admin", "publisher", "governor")
        }
        server = ServerProcess({**deployment.env, "RELIQUARY_POLICY_FILE": str(policy_file), **env})
        server.start()
        reg = Registry(server, tmp_path / "home", tokens, tmp_path / "publisher.pem")
        started.append(reg)
        reg.home.mkdir()
        reg.cli("keys", "generate", "--out", str(reg.publisher_key))
        reg.cli(
            "keys",
            "register",
            str(tmp_path / "publisher.pub.pem"),
            "--role",
            "publisher",
            role="admin",
        )
        return reg

    try:
        yield start
    finally:
        for reg in started:
            for proc in reg.workers:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=30)
            reg.server.stop()
