"""Real registry clients against a real ``reliquary-server serve``, on both deployments.

``registry`` is a live server with a publisher's and a reader's token; ``make_layout``
writes a small real image as an OCI image layout (``tests.support.interop``); ``skopeo``
runs the client with a home of its own. skopeo is required, never skipped:
``scripts/test`` installs it (``apt-get install -y skopeo``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Deployment
from tests.support.interop import Layout, Registry, write_layout
from tests.support.server import ServerProcess, run_cli


@pytest.fixture
def make_layout(tmp_path: Path) -> Callable[[str, str], Layout]:
    """``make_layout(tag, greeting)``: a new layout under ``tmp_path``."""
    made = 0

    def make(tag: str, greeting: str) -> Layout:
        nonlocal made
        made += 1
        return write_layout(tmp_path / f"layout-{made}", tag, greeting)

    return make


@pytest.fixture
def registry(deployment: Deployment) -> Iterator[Registry]:
    run_cli(deployment.env, "db", "upgrade")
    publisher = run_cli(deployment.env, "token", "create", "--role", "publisher").strip()
    reader = run_cli(deployment.env, "token", "create", "--role", "reader").strip()
    with ServerProcess(deployment.env) as process:
        yield Registry(process, publisher, reader)


@pytest.fixture
def skopeo(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``skopeo(*args)``: run skopeo with a home of its own (no auth file of the user's);
    the finished process, whatever its exit status."""
    binary = shutil.which("skopeo")
    if binary is None:
        pytest.fail(
            "skopeo is required for tests/interop and missing: run ./scripts/test (it "
            "installs it) or apt-get install -y skopeo",
            pytrace=False,
        )
    home = tmp_path / "skopeo-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "REGISTRY_AUTH_FILE": str(home / "auth.json")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )

    return run
