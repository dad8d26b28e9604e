"""An image pushed over ``/v2`` is governed like any artifact: ``reliquary sign``,
``status``, ``promote``, ``rollback``, ``history`` and ``pull --channel`` work on the
image artifact ``NAME@TAG`` unchanged, and a model pinning the image by digest is
accepted once the image was pushed, and promotable to production once the image is
signed and its ``stable`` channel holds it. The installed ``reliquary`` command against
a real server process with a policy file, on both deployments; images are pushed as a
client pushes them (blobs, then the manifest by tag).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from registry.core.roles import Role
from tests.conftest import Api, Deployment
from tests.support.content import NAME, digests
from tests.support.oci import SeededImage, seed_image
from tests.support.server import CLI, ServerProcess

pytestmark = pytest.mark.slow
IMAGE = "veid/runtime"
POLICY = b"""
[channels.stable]
require_publisher_signature = true

[channels.production]
require_runtime_image = true
runtime_image_channel = "stable"
"""
"""Images reach ``stable`` with a publisher signature; production models must pin an
image that is held here, publisher-signed, and what ``veid/runtime:stable`` holds."""


@dataclass
class Registry:
    server: ServerProcess
    api: Api  # pushes images over /v2 (in process, on the same deployment)
    home: Path
    publisher_key: Path

    def run(
        self, *args: str, role: Role = Role.PUBLISHER, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "RELIQUARY_URL": self.server.url,
            "RELIQUARY_TOKEN": self.api.tokens[role],
            "RELIQUARY_CACHE": str(self.home / "cache"),
            "RELIQUARY_CONFIG": str(self.home / "config.toml"),
        }
        done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (
            f"reliquary {' '.join(args)} -> {done.returncode}, expected {expect}\n{done.stderr}"
        )
        return done

    def json(self, *args: str, role: Role = Role.PUBLISHER, expect: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", role=role, expect=expect).stdout)

    def push_model(
        self, version: str, pin: str, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        model = self.home / f"model-{version}"
        model.mkdir(parents=True, exist_ok=True)
        (model / "saved_model.pb").write_bytes(f"graph {version} run in {IMAGE}".encode())
        return self.run(
            *("push", str(model), "--name", NAME, "--version", version),
            *("--engine", "tensorflow-savedmodel", "--runtime", f"image={pin}"),
            expect=expect,
        )

    def sign(self, ref: str) -> int:
        done = self.run("sign", ref, "--key", str(self.publisher_key), "--predicate", "publish")
        return int(done.stdout)

    def promote(self, ref: str, channel: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        return self.run(
            *("promote", ref, "--channel", channel, "--reason", f"{ref} to {channel}"),
            role=Role.GOVERNOR,
            expect=expect,
        )


@pytest.fixture
def registry(api: Api, deployment: Deployment, tmp_path: Path) -> Iterator[Registry]:
    policy = tmp_path / "policy.toml"
    policy.write_bytes(POLICY)
    with ServerProcess({**deployment.env, "RELIQUARY_POLICY_FILE": str(policy)}) as server:
        reg = Registry(server, api, tmp_path / "home", tmp_path / "publisher.pem")
        reg.run("keys", "generate", "--out", str(reg.publisher_key))
        public = str(reg.publisher_key.with_suffix(".pub.pem"))
        reg.run("keys", "register", public, "--role", "publisher", role=Role.ADMIN)
        yield reg


def digest_of(image: SeededImage) -> str:
    """The image artifact's digest (``blake3:…``)."""
    assert image.artifact is not None
    return str(digests(image.artifact).blake3)


def unmet_of(status: dict[str, Any]) -> set[str]:
    return {r["requirement"] for r in status["requirements"] if not r["met"]}


def test_an_image_pushed_over_v2_is_signed_promoted_rolled_back_and_pinned(
    registry: Registry,
) -> None:
    api = registry.api
    elsewhere = seed_image(api, "other/runtime", "2.21")
    pin = f"{IMAGE}@sha256:{elsewhere.sha256_hex}"
    refused = registry.push_model("v1", pin, expect=5)  # held by another repository only
    assert "push the image first" in refused.stderr

    image = seed_image(api, IMAGE, "2.21")  # the same image, pushed here: IMAGE@2.21
    assert image.pin == pin
    v21 = digest_of(image)
    inspected = registry.json("inspect", f"{IMAGE}@2.21")
    assert inspected["manifest"]["kind"] == "image"
    assert inspected["manifest"]["runtime"]["manifest"] == f"sha256:{image.sha256_hex}"

    # sign, status and promote an image artifact like any artifact
    unsigned = registry.json("status", f"{IMAGE}@2.21", "--channel", "stable", expect=5)
    assert unmet_of(unsigned) == {"publisher_signature"}
    not_yet = registry.promote(f"{IMAGE}@2.21", "stable", expect=5)
    assert "unmet: publisher_signature" in not_yet.stderr
    registry.sign(f"{IMAGE}@2.21")
    passed = registry.run("status", f"{IMAGE}@2.21", "--channel", "stable")
    assert f"{IMAGE}@2.21 ({v21}) may be promoted to stable" in passed.stderr
    first = registry.promote(f"{IMAGE}@2.21", "stable")
    assert f"(nothing) → {v21}" in first.stderr

    # the model pinning it is accepted now, and promotable: the image is signed and stable
    registry.push_model("v1", pin)
    pushed = registry.json("inspect", f"{NAME}@v1")
    assert pushed["manifest"]["runtime"]["image"] == pin
    met = registry.json("status", f"{NAME}@v1", "--channel", "production")
    assert met["promotable"] is True
    assert unmet_of(met) == set()

    # a newer image in stable leaves the model's pin behind; rolling stable back restores it
    newer = seed_image(api, IMAGE, "2.22", content="newer")
    v22 = digest_of(newer)
    registry.sign(f"{IMAGE}@2.22")
    second = registry.promote(f"{IMAGE}@2.22", "stable")
    assert f"{v21} → {v22}" in second.stderr
    behind = registry.json("status", f"{NAME}@v1", "--channel", "production", expect=5)
    assert unmet_of(behind) == {"runtime_image.channel"}
    registry.promote(f"{NAME}@v1", "production", expect=5)
    back = registry.run(
        *("rollback", IMAGE, "--channel", "stable", "--reason", "2.22 breaks v1"),
        role=Role.GOVERNOR,
    )
    assert f"{v22} → {v21}" in back.stderr
    pointers = registry.json("channels", IMAGE)["channels"]
    assert [(p["channel"], p["digest"]) for p in pointers] == [("stable", v21)]
    assert registry.json("status", f"{NAME}@v1", "--channel", "production")["promotable"]
    registry.promote(f"{NAME}@v1", "production")

    lines = registry.run("history", IMAGE, "--channel", "stable", "--jsonl").stdout
    events = [json.loads(line) for line in lines.splitlines()]
    assert [(e["action"], e["from"], e["to"]) for e in events] == [
        ("rollback", v22, v21),
        ("promote", v21, v22),
        ("promote", None, v21),
    ]
    assert events[0]["reason"] == "2.22 breaks v1"
    assert events[0]["log_index"] == int(back.stdout)

    # what stable holds is the layout of 2.21
    out = registry.home / "stable"
    pulled = registry.json("pull", IMAGE, "--channel", "stable", "-o", str(out), role=Role.READER)
    assert pulled["digest"] == v21
    index = json.loads((out / "index.json").read_bytes())
    [top] = index["manifests"]
    assert top["digest"] == f"sha256:{image.sha256_hex}"
    assert top["annotations"]["org.opencontainers.image.ref.name"] == "2.21"
    assert (out / "blobs" / "sha256" / image.sha256_hex).read_bytes() == image.manifest
