"""A release manager follows a measured evaluation (ARCHITECTURE §13) from the shell: the
channel's policy names the dataset, a push queues evaluation jobs, `reliquary status`
shows the thresholds waiting for measurements, `reliquary verify --evaluate` asks for
more, and the proposal carries the evaluation. A real server with a policy file.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import Deployment
from tests.support.server import CLI, ServerProcess, run_cli

pytestmark = pytest.mark.slow
POLICY = b"""
[channels.production.evaluation]
source = "worker"
dataset = "veid/golden@v1"
profile = "cpu-tensorflow"
min_workers = 2
min_samples = 10
thresholds = { mae = "<=8", mean_bias = "-2..2" }
drift = { tolerance = 1.0, max_moved = 0.5 }

[channels.staging]
require_publisher_signature = false
"""


@dataclass
class Registry:
    server: ServerProcess
    token: str
    home: Path

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "RELIQUARY_URL": self.server.url,
            "RELIQUARY_TOKEN": self.token,
            "RELIQUARY_CACHE": str(self.home / "cache"),
            "RELIQUARY_CONFIG": str(self.home / "config.toml"),
            "COLUMNS": "200",
        }
        done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (
            f"reliquary {' '.join(args)} -> {done.returncode}, expected {expect}\n{done.stderr}"
        )
        return done

    def json(self, *args: str, expect: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", expect=expect).stdout)


@pytest.fixture
def registry(deployment: Deployment, tmp_path: Path) -> Iterator[Registry]:
    policy = tmp_path / "policy.toml"
    policy.write_bytes(POLICY)
    token = run_cli(deployment.env, "token", "create", "--role", "admin").strip()
    proc = ServerProcess({**deployment.env, "RELIQUARY_POLICY_FILE": str(policy)})
    proc.start()
    try:
        yield Registry(proc, token, tmp_path / "home")
    finally:
        proc.stop()


def test_status_shows_the_thresholds_and_verify_asks_for_measurements(
    registry: Registry, tmp_path: Path
) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    np.save(golden / "features.npy", np.zeros((12, 4), np.float32))
    np.save(golden / "labels.npy", np.zeros(12, np.float32))
    dataset = registry.json(
        *("push", str(golden), "--kind", "dataset", "--name", "veid/golden", "--version", "v1"),
        *("--label-name", "trust_score"),
    )
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"not really a graph")
    registry.run(
        *("push", str(model), "--name", "veid/trust-score", "--version", "v1"),
        *("--engine", "tensorflow-savedmodel"),
    )
    ref = "veid/trust-score@v1"

    status = registry.json("status", ref, "--channel", "production", expect=5)
    section = status["evaluation"]
    assert section["dataset"] == "veid/golden@v1"
    assert section["digest"] == dataset["digest"]
    assert section["state"] == "queued"
    printed = registry.run("status", ref, "--channel", "production", expect=5).stdout
    heading = next(line for line in printed.splitlines() if line.startswith("evaluation:"))
    assert "queued" in heading and "veid/golden@v1" in heading and "12 samples" in heading
    assert "measured by 2 cpu-tensorflow workers" in heading
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.strip()}
    assert rows["mae"][1:4] == ["-", "<=8", "UNMET"]  # nothing measured yet
    assert rows["mean_bias"][1:4] == ["-", "-2..2", "UNMET"]

    queued = registry.json("verify", ref, "--evaluate", "--channel", "production", "--count", "2")
    assert [(j["task"], j["channel"], j["profile"]) for j in queued] == [
        ("evaluate", "production", "cpu-tensorflow")
    ] * 2
    refused = registry.run("verify", ref, "--evaluate", expect=2)
    assert "--evaluate needs --channel" in refused.stderr
    refused = registry.run("verify", ref, "--evaluate", "--channel", "staging", expect=2)
    assert "has no worker evaluation" in refused.stderr
    plain = registry.json("verify", ref, "--profile", "cpu-tensorflow")
    assert [j["task"] for j in plain] == ["reproduce"]

    proposal = json.loads(registry.run("proposal", ref, "--channel", "production").stdout)
    assert proposal["evaluation"]["digest"] == dataset["digest"]
    assert proposal["evaluation"]["metrics"]["mae"]["rule"] == "<=8"
    staging = registry.run("status", ref, "--channel", "staging")
    assert "evaluation:" not in staging.stdout  # the policy measures nothing there
    assert (
        json.loads(registry.run("proposal", ref, "--channel", "staging").stdout)["evaluation"]
        is None
    )
