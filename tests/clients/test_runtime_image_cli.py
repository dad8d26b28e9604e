"""`reliquary push --runtime image=NAME@sha256:HEX` pins the model's runtime image, checked
by the client before it hashes anything and by a real server process, on both deployments.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.core.roles import Role
from tests.conftest import Api, Deployment
from tests.support.content import NAME
from tests.support.oci import seed_image
from tests.support.server import CLI, ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def server(deployment: Deployment) -> Iterator[ServerProcess]:
    with ServerProcess(deployment.env) as proc:
        yield proc


def reliquary(
    server: ServerProcess, api: Api, home: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RELIQUARY_URL": server.url,
        "RELIQUARY_TOKEN": api.tokens[Role.PUBLISHER],
        "RELIQUARY_CACHE": str(home / "cache"),
        "RELIQUARY_CONFIG": str(home / "config.toml"),
    }
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_push_pins_the_runtime_image_given_by_digest_and_refuses_a_tag(
    api: Api, server: ServerProcess, tmp_path: Path
) -> None:
    image = seed_image(api, "veid/runtime", "2.21")
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"graph run in veid/runtime")
    push = ("push", str(model), "--name", NAME, "--engine", "tensorflow-savedmodel")

    tagged = reliquary(
        server, api, tmp_path, *push, "--version", "v1", "--runtime", "image=veid/runtime:2.21"
    )
    assert tagged.returncode == 2, tagged.stderr  # refused before anything is hashed or sent
    assert "Invalid value for --runtime: runtime.image" in tagged.stderr
    assert "names tag '2.21'" in tagged.stderr
    assert "docker://HOST/veid/runtime:2.21" in tagged.stderr

    absent = f"veid/runtime@sha256:{'ab' * 32}"
    missing = reliquary(
        server, api, tmp_path, *push, "--version", "v1", "--runtime", f"image={absent}"
    )
    assert missing.returncode == 5, missing.stderr  # refused by the registry
    assert "push the image first" in missing.stderr

    done = reliquary(
        server, api, tmp_path, *push, "--version", "v1", "--runtime", f"image={image.pin}", "--json"
    )
    assert done.returncode == 0, done.stderr
    digest = json.loads(done.stdout)["digest"]
    inspected = reliquary(server, api, tmp_path, "inspect", f"{NAME}@v1", "--json")
    assert inspected.returncode == 0, inspected.stderr
    manifest = json.loads(inspected.stdout)["manifest"]
    assert manifest["runtime"] == {"engine": "tensorflow-savedmodel", "image": image.pin}
    listed = api.client.get("/v1/artifacts", params={"name": NAME}, headers=api.auth(Role.READER))
    assert [a["digest"] for a in listed.json()["artifacts"]] == [digest]
