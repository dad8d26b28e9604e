"""A data team publishes an evaluation dataset (ARCHITECTURE §13) with `reliquary push
--kind dataset`: the description is read from the files' headers, and a dataset that
cannot be measured is refused before a byte is sent. A real server on both deployments.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import httpx
import numpy as np
import pytest

from tests.conftest import Deployment
from tests.support.server import CLI, ServerProcess, run_cli

pytestmark = pytest.mark.slow


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
        }
        done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (
            f"reliquary {' '.join(args)} -> {done.returncode}, expected {expect}\n{done.stderr}"
        )
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def holds_blob(self, path: Path) -> bool:
        digest = "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()
        answer = httpx.head(
            f"{self.server.url}/v1/blobs/{digest}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert answer.status_code in (200, 404)
        return answer.status_code == 200


@pytest.fixture
def registry(deployment: Deployment, tmp_path: Path) -> Iterator[Registry]:
    token = run_cli(deployment.env, "token", "create", "--role", "publisher").strip()
    proc = ServerProcess(deployment.env)
    proc.start()
    try:
        yield Registry(proc, token, tmp_path / "home")
    finally:
        proc.stop()


def golden(root: Path, rows: int = 24, label_rows: int | None = None) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(3)
    np.save(root / "features.npy", rng.normal(0, 1, (rows, 8)).astype(np.float32))
    np.save(root / "labels.npy", rng.uniform(0, 100, label_rows or rows).astype(np.float32))
    return root


def test_a_dataset_carries_the_description_of_its_files(registry: Registry, tmp_path: Path) -> None:
    ds = golden(tmp_path / "golden")
    pushed = registry.run(
        *("push", str(ds), "--kind", "dataset", "--name", "veid/golden", "--version", "v1"),
        *("--label-name", "trust_score", "--source", "veid golden set, 2026-11"),
    )
    assert "dataset: 24 samples (test); features: features=features.npy" in pushed.stderr
    manifest = registry.json("inspect", "veid/golden@v1")["manifest"]
    assert manifest["kind"] == "dataset"
    assert manifest["dataset"] == {
        "samples": 24,
        "split": "test",
        "source": "veid golden set, 2026-11",
        "features": {"features": {"path": "features.npy", "dtype": "float32", "shape": [24, 8]}},
        "labels": {"trust_score": {"path": "labels.npy", "dtype": "float32", "shape": [24]}},
    }

    # Named files, anywhere in the tree; a bare labels.npy is named "output_0" by default.
    (ds / "more").mkdir()
    np.save(ds / "more" / "ids.npy", np.arange(24, dtype=np.int64))
    named = registry.json(
        *("push", str(ds), "--kind", "dataset", "--name", "veid/golden", "--version", "v2"),
        *("--features", "features=features.npy", "--features", "ids=more/ids.npy"),
        *("--split", "validation"),
    )
    manifest = registry.json("inspect", named["digest"])["manifest"]
    assert manifest["dataset"]["split"] == "validation"
    assert manifest["dataset"]["features"]["ids"] == {
        "path": "more/ids.npy",
        "dtype": "int64",
        "shape": [24],
    }
    assert list(manifest["dataset"]["labels"]) == ["output_0"]

    # An LLM prompt set: prompts.json and expected.json, arrays of strings.
    llm = tmp_path / "prompts"
    llm.mkdir()
    (llm / "prompts.json").write_text(json.dumps(["2+2=", "the capital of France is"]))
    (llm / "expected.json").write_text(json.dumps(["4", "Paris"]))
    registry.run("push", str(llm), "--kind", "dataset", "--name", "veid/qa", "--version", "v1")
    described = registry.json("inspect", "veid/qa@v1")["manifest"]["dataset"]
    assert described["samples"] == 2
    assert described["features"] == {
        "prompts": {"path": "prompts.json", "dtype": "text", "shape": [2]}
    }
    assert described["labels"] == {
        "expected": {"path": "expected.json", "dtype": "text", "shape": [2]}
    }


def test_a_dataset_that_cannot_be_measured_is_refused_before_anything_is_sent(
    registry: Registry, tmp_path: Path
) -> None:
    push = ("push", "--kind", "dataset", "--name", "veid/golden", "--version", "v1")

    short = golden(tmp_path / "short", rows=24, label_rows=23)
    refused = registry.run(push[0], str(short), *push[1:], expect=2)
    assert "disagree on the number of samples" in refused.stderr
    assert "features.npy has 24" in refused.stderr and "labels.npy has 23" in refused.stderr
    assert not registry.holds_blob(short / "features.npy")

    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    np.save(unlabelled / "features.npy", np.zeros((4, 2), np.float32))
    refused = registry.run(push[0], str(unlabelled), *push[1:], expect=2)
    assert "a dataset needs --labels NAME=PATH" in refused.stderr
    assert not registry.holds_blob(unlabelled / "features.npy")

    refused = registry.run(
        push[0], str(unlabelled), *push[1:], "--labels", "score=scores.npy", expect=2
    )
    assert "--labels score=scores.npy" in refused.stderr and "is not a file" in refused.stderr

    (unlabelled / "labels.csv").write_text("1\n2\n3\n4\n")
    refused = registry.run(
        push[0], str(unlabelled), *push[1:], "--labels", "score=labels.csv", expect=2
    )
    assert "a dataset file is a .npy" in refused.stderr

    # A .npy whose header promises more than the file holds: cut short in transit.
    cut = golden(tmp_path / "cut")
    data = (cut / "labels.npy").read_bytes()
    (cut / "labels.npy").write_bytes(data[:-8])
    refused = registry.run(push[0], str(cut), *push[1:], expect=2)
    assert "cut short" in refused.stderr
    assert not registry.holds_blob(cut / "features.npy")

    assert registry.json("ls", "--name", "veid/golden")["artifacts"] == []
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights")
    refused = registry.run(
        *("push", str(model), "--name", "veid/m", "--version", "v1"),
        *("--labels", "y=labels.npy"),
        expect=2,
    )
    assert "--kind dataset" in refused.stderr
