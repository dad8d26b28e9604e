"""Independent evaluation on cpu-tensorflow with real TensorFlow, on tiny models and
datasets the tests build (``tests.support.tf_evaluation``): a teacher, a biased variant
(+2.5 points), a drifting one (+1.5), and one that pools a batch into one prediction.

The first tests drive one evaluate job as a worker does (a real registry process for
manifests, attestations and blobs; fresh child processes) and read the signed
statement; the journeys after them run worker processes against a registry whose
policy queues the evaluate jobs and gates promotion on their statements.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clients.cache import BlobCache
from clients.client import RegistryClient
from registry.core.keys import SigningKey
from tests.support.content import NAME
from tests.support.server import CLI
from tests.support.tf_evaluation import build_dataset, build_model, push_dataset
from tests.support.workers import Registry
from workers.errors import Refusal
from workers.evaluate import Evaluation
from workers.profiles import PROFILES
from workers.runs import WorkerOptions

pytestmark = pytest.mark.slow
SAMPLES = 300
DATASET = "veid/golden"
THRESHOLDS = {
    "r2": ">=0.9",
    "mae": "<=2.0",
    "rmse": "<=3.0",
    "accuracy_5": ">=0.95",
    "p95_abs_error": "<=3.0",
    "mean_bias": "-2..2",
}
PLAIN = b"[channels.production]\nrequire_publisher_signature = true\n"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def push_candidate(reg: Registry, model: Path, version: str) -> str:
    out = reg.cli(
        "push",
        str(model),
        "--name",
        NAME,
        "--version",
        version,
        "--engine",
        "tensorflow-savedmodel",
        "--sign-key",
        str(reg.publisher_key),
        "--json",
    )
    digest: str = json.loads(out.splitlines()[0])["digest"]
    return digest


def golden(reg: Registry, tmp_path: Path, samples: int = SAMPLES, version: str = "v1") -> str:
    root = tmp_path / f"golden-{version}"
    description = build_dataset(root, samples)
    return push_dataset(
        reg.server.url, reg.tokens["publisher"], root, DATASET, version, description
    )


def evaluate(
    reg: Registry, tmp_path: Path, artifact: str, dataset: str, **task: Any
) -> tuple[dict[str, Any], list[str]]:
    """One evaluate job as a worker with a fresh key works it: (the signed predicate,
    the worker's log lines). Raises Refusal as the worker would report it."""
    key = SigningKey.generate()
    home = tmp_path / f"worker-{key.public.keyid[:8]}"
    options = WorkerOptions(
        profile=PROFILES["cpu-tensorflow"],
        key=key,
        work_dir=home / "jobs",
        cache=BlobCache(home / "cache"),
    )
    job = {
        "id": f"job-{key.public.keyid[:8]}",
        "artifact": artifact,
        "profile": "cpu-tensorflow",
        "task": "evaluate",
        "channel": "production",
        "evaluation": {
            "dataset": dataset,
            "dataset_ref": f"{DATASET}@v1",
            "min_samples": 100,
            "thresholds": THRESHOLDS,
            "baseline": None,
            "baseline_predictions": None,
            "tolerance": 1.0,
            **task,
        },
    }
    log = logging.getLogger(f"test.worker.{key.public.keyid[:8]}")
    lines = Lines()
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    try:
        with RegistryClient(reg.server.url, reg.tokens["admin"]) as client:
            envelope = Evaluation(client, options, job, threading.Event(), log).run()
    except Refusal as refusal:
        refusal.add_note("\n".join(lines.lines))
        raise
    statement = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    assert statement["subject"][0]["name"].startswith(f"{NAME}@")
    predicate: dict[str, Any] = statement["predicate"]
    return predicate, lines.lines


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_two_workers_measure_the_teacher_and_agree_bit_for_bit(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(PLAIN)
    digest = push_candidate(reg, build_model(tmp_path / "teacher"), "v1")
    dataset = golden(reg, tmp_path)
    first, log = evaluate(reg, tmp_path, digest, dataset)
    second, _ = evaluate(reg, tmp_path, digest, dataset)
    assert first["predictions"] == second["predictions"]
    assert first["metrics"] == second["metrics"] and first["worker"] != second["worker"]
    m = first["metrics"]
    assert m["samples"] == SAMPLES and first["samples"] == SAMPLES
    assert m["r2"] > 0.95 and m["mae"] < 1.0 and abs(m["mean_bias"]) < 0.2
    assert m["accuracy_5"] == 1.0 and {"rmse", "p95_abs_error", "accuracy_20"} <= set(m)
    assert first["predictions"]["count"] == SAMPLES
    assert first["dataset"] == dataset and first["thresholds"] == THRESHOLDS
    assert first["profile"] == "cpu-tensorflow" and first["channel"] == "production"
    assert first["engine"]["name"] == "tensorflow" and first["device"] == "cpu"
    d = first["determinism"]
    assert d["pythonhashseed"] == "0" and d["mkl_num_threads"] == 1
    assert d["openblas_num_threads"] == 1 and d["op_determinism"] is True
    assert d["batch"] == 1024
    assert (
        "tensorflow-cpu" in first["host"]["libraries"] or "tensorflow" in first["host"]["libraries"]
    )
    assert "drift" not in first and first["timings"]["inference_seconds"] > 0
    assert any(": run candidate: 300 predictions" in line for line in log)


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_biased_model_is_measured_as_biased(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(PLAIN)
    digest = push_candidate(reg, build_model(tmp_path / "biased", "--shift", "2.5"), "v1")
    predicate, _ = evaluate(reg, tmp_path, digest, golden(reg, tmp_path))
    assert predicate["metrics"]["mean_bias"] == pytest.approx(2.5, abs=0.1)


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_drift_from_the_live_model_is_measured_and_a_baseline_that_does_not_reproduce_refused(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(PLAIN)
    live = push_candidate(reg, build_model(tmp_path / "teacher"), "v1")
    drifting = push_candidate(reg, build_model(tmp_path / "drift", "--shift", "1.5"), "v2")
    dataset = golden(reg, tmp_path)
    alone, _ = evaluate(reg, tmp_path, live, dataset)
    predicate, log = evaluate(reg, tmp_path, drifting, dataset, baseline=live)
    drift = predicate["drift"]
    assert drift["against"] == live and drift["predictions"] == alone["predictions"]["digest"]
    assert drift["metrics"] == alone["metrics"]
    assert drift["mean_abs_diff"] == pytest.approx(1.5, abs=0.01)
    assert drift["max_abs_diff"] == pytest.approx(1.5, abs=0.01)
    assert drift["moved"] == 1.0 and drift["tolerance"] == 1.0
    assert any(": run baseline:" in line for line in log)
    other = "blake3:" + "0" * 64
    with pytest.raises(Refusal, match=f"agreed on {other}") as caught:
        evaluate(reg, tmp_path, drifting, dataset, baseline=live, baseline_predictions=other)
    assert caught.value.retry is False


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_too_few_samples_are_refused_before_anything_is_pulled_or_run(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(PLAIN)
    digest = push_candidate(reg, build_model(tmp_path / "teacher"), "v1")
    small = golden(reg, tmp_path, samples=50)
    with pytest.raises(Refusal) as caught:
        evaluate(reg, tmp_path, digest, small, min_samples=100)
    refusal = caught.value
    assert "50 samples" in refusal.reason and "100 (min_samples)" in refusal.reason
    assert refusal.retry is False
    notes = "\n".join(refusal.__notes__)
    assert ": run " not in notes and "pulled" not in notes


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_model_whose_output_count_differs_from_its_input_count_is_refused(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(PLAIN)
    digest = push_candidate(reg, build_model(tmp_path / "pooled", "--pooled"), "v1")
    with pytest.raises(Refusal, match="prediction count differs from the sample count") as caught:
        evaluate(reg, tmp_path, digest, golden(reg, tmp_path))
    assert "a model whose output count differs from its input count is refused" in str(caught.value)
    assert caught.value.retry is False


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_labels_naming_an_output_the_model_lacks_are_refused_naming_it(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(PLAIN)
    digest = push_candidate(reg, build_model(tmp_path / "teacher"), "v1")
    root = tmp_path / "renamed"
    description = build_dataset(root, SAMPLES)
    description["labels"] = {"risk": description["labels"]["trust_score"]}
    dataset = push_dataset(
        reg.server.url, reg.tokens["publisher"], root, DATASET, "v1", description
    )
    with pytest.raises(Refusal, match=r"no output 'risk'.*trust_score"):
        evaluate(reg, tmp_path, digest, dataset)


# -- journeys: worker processes, evaluate jobs queued by the policy, promotion gated ------


def policy(min_workers: int = 2, min_samples: int = 100) -> bytes:
    rules = ", ".join(f'{k} = "{v}"' for k, v in THRESHOLDS.items())
    return (
        "[channels.production]\nrequire_publisher_signature = true\n"
        f'evaluation = {{ source = "worker", dataset = "{DATASET}@v1", '
        f'profile = "cpu-tensorflow", min_workers = {min_workers}, '
        f"min_samples = {min_samples}, thresholds = {{ {rules} }}, "
        "drift = { tolerance = 1.0, max_moved = 0.25 } }\n"
    ).encode()


def evaluation_state(reg: Registry, digest: str) -> dict[str, Any]:
    status = reg.api(f"/v1/artifacts/{digest}/status?channel=production")
    state: dict[str, Any] = status["evaluation"]
    return state


def work(reg: Registry, workers: int = 1) -> None:
    started = [reg.worker("--once") for _ in range(workers)]
    for n, proc in enumerate(started):
        assert proc.wait(timeout=300) == 0, reg.log_of(n)


def promote(reg: Registry, version: str, expect: int = 0) -> str:
    return reg.cli(
        "promote",
        f"{NAME}@{version}",
        "--channel",
        "production",
        "--reason",
        "evaluated",
        role="governor",
        expect=expect,
    )


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_model_meeting_the_runbook_measured_by_two_agreeing_workers_is_promoted(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(policy(min_workers=2))
    golden(reg, tmp_path)
    digest = push_candidate(reg, build_model(tmp_path / "teacher"), "v1")
    assert "evaluation" in promote(reg, "v1", expect=5)
    work(reg, workers=2)
    state = evaluation_state(reg, digest)
    assert state["state"] == "measured" and len(state["workers"]) == 2, state
    assert len({w["predictions"] for w in state["workers"]}) == 1
    ruled = {name: m for name, m in state["metrics"].items() if m.get("rule")}
    assert set(ruled) == set(THRESHOLDS) and all(m["met"] for m in ruled.values()), ruled
    # what a person reads: each measured figure beside its threshold
    shown = reg.cli("status", f"{NAME}@v1", "--channel", "production", role="governor")
    for name, m in ruled.items():
        row = next(line for line in shown.splitlines() if line.split()[:1] == [name]).split()
        assert row[1:4] == [f"{m['value']:.4g}", m["rule"], "met"], (name, row)
    promote(reg, "v1")


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_bias_of_2_5_points_is_refused_naming_the_threshold(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(policy(min_workers=1))
    golden(reg, tmp_path)
    digest = push_candidate(reg, build_model(tmp_path / "biased", "--shift", "2.5"), "v1")
    work(reg)
    bias = evaluation_state(reg, digest)["metrics"]["mean_bias"]
    assert bias["value"] == pytest.approx(2.5, abs=0.1) and bias["met"] is False
    assert "evaluation.mean_bias" in promote(reg, "v1", expect=5)


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_model_passing_the_thresholds_but_drifting_from_the_live_one_is_refused(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(policy(min_workers=1))
    golden(reg, tmp_path)
    push_candidate(reg, build_model(tmp_path / "teacher"), "v1")
    work(reg)
    promote(reg, "v1")
    digest = push_candidate(reg, build_model(tmp_path / "drift", "--shift", "1.5"), "v2")
    work(reg)
    state = evaluation_state(reg, digest)
    ruled = {name: m for name, m in state["metrics"].items() if m.get("rule")}
    assert set(ruled) == set(THRESHOLDS) and all(m["met"] for m in ruled.values()), ruled
    assert state["changes"]["mean_bias"] == pytest.approx(1.5, abs=0.01)  # against v1
    drift = state["drift"]
    assert drift["moved"] == 1.0 and drift["mean_abs_diff"] == pytest.approx(1.5, abs=0.01)
    assert drift["met"] is False
    refused = promote(reg, "v2", expect=5)
    assert "evaluation.drift" in refused and "100.0% of samples moved" in refused
    # the governance document carries the same figures
    done = subprocess.run(
        [CLI, "proposal", f"{NAME}@v2", "--channel", "production"],
        env=reg.env("publisher"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    proposal = json.loads(done.stdout)
    assert proposal["evaluation"]["drift"]["moved"] == 1.0
    assert proposal["evaluation"]["drift"]["met"] is False


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_dataset_below_min_samples_fails_the_job_before_any_run(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(policy(min_workers=1, min_samples=100))
    golden(reg, tmp_path, samples=50)
    digest = push_candidate(reg, build_model(tmp_path / "teacher"), "v1")
    work(reg)
    [job] = [j for j in reg.jobs(digest) if j.get("task") == "evaluate"]
    assert job["state"] == "failed" and job["attempts"] == 1
    assert "50 samples" in job["last_error"] and "100 (min_samples)" in job["last_error"]
    log = reg.log_of(0)
    assert ": run " not in log and "pulled" not in log


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_model_whose_output_count_differs_from_its_input_count_fails_its_job(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(policy(min_workers=1))
    golden(reg, tmp_path)
    digest = push_candidate(reg, build_model(tmp_path / "pooled", "--pooled"), "v1")
    work(reg)
    [job] = [j for j in reg.jobs(digest) if j.get("task") == "evaluate"]
    assert job["state"] == "failed" and "output count differs" in job["last_error"]
    assert "evaluation" in promote(reg, "v1", expect=5)


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_publisher_signed_evaluation_is_ignored_where_workers_measure(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(policy(min_workers=1))
    golden(reg, tmp_path)
    digest = push_candidate(reg, build_model(tmp_path / "biased", "--shift", "2.5"), "v1")
    reg.cli(
        "sign",
        f"{NAME}@v1",
        "--predicate",
        "evaluation",
        "--metrics",
        "mean_bias=0.0",
        "--metrics",
        "r2=0.99",
        "--key",
        str(reg.publisher_key),
    )
    assert evaluation_state(reg, digest)["state"] in ("queued", "none")
    assert "evaluation" in promote(reg, "v1", expect=5)
    work(reg)
    assert evaluation_state(reg, digest)["metrics"]["mean_bias"]["met"] is False
    assert "evaluation.mean_bias" in promote(reg, "v1", expect=5)
