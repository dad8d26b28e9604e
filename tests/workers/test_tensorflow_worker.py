"""cpu-tensorflow workers on the example trust-score model, as real processes against a real
registry: agreement across workers gates promotion; nondeterminism, tampering and dead
workers are caught, never attested.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.content import NAME
from tests.support.workers import WORKER, Registry, build_example

pytestmark = pytest.mark.slow
TWO_WORKERS = b"""
[channels.production]
require_publisher_signature = true
reproducibility = [{ profile = "cpu-tensorflow", min_workers = 2 }]
"""
ONE_WORKER = TWO_WORKERS.replace(b"min_workers = 2", b"min_workers = 1")


def trust_score(reg: Registry, tmp_path: Path, *build_args: str) -> tuple[Path, str]:
    """Build the example model (with ``build_args``), push it signed; (source, digest)."""
    source = build_example("trust_score.py", tmp_path / "ts", *build_args)
    return source, reg.push_model(source, "v1", "tensorflow-savedmodel")


@pytest.mark.parametrize("deployment", ["embedded", "production"], indirect=True)
def test_two_workers_with_their_own_keys_agree_and_the_model_is_promoted(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(TWO_WORKERS)
    _, digest = trust_score(reg, tmp_path)
    refused = reg.cli(
        "promote",
        f"{NAME}@v1",
        "--channel",
        "production",
        "--reason",
        "early",
        role="governor",
        expect=5,
    )
    assert "reproducibility.cpu-tensorflow" in refused
    first, second = reg.worker("--once"), reg.worker("--once")
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0, reg.log_of(0)
    state = reg.profile_state(digest)
    assert state["state"] == "attested" and state["agreeing_workers"] == 2, state
    found = reg.reproducibility_predicates(digest)
    assert len(found) == 2 and len({p["worker"] for p in found}) == 2
    for p in found:
        assert p["agree"] is True and len(p["runs"]) == 3 and p["output"] == state["output"]
        assert p["engine"]["name"] == "tensorflow" and p["engine"]["version"].startswith("2.")
        assert p["determinism"]["op_determinism"] is True and p["device"] == "cpu"
        assert p["host"]["python"] and "tensorflow-cpu" in p["host"]["libraries"]
        scores = p["values"]["trust_score"]
        assert scores["shape"] == [16, 1] and all(0 <= v <= 100 for v in scores["values"])
    assert "run 3/3" in reg.log_of(0)
    status = reg.cli("status", f"{NAME}@v1", "--channel", "production")
    assert "attested" in status and "2 worker(s) agree" in status
    reg.cli(
        "promote", f"{NAME}@v1", "--channel", "production", "--reason", "verified", role="governor"
    )


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_unseeded_randomness_is_caught_as_nondeterministic_and_never_promoted(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(ONE_WORKER)
    _, digest = trust_score(reg, tmp_path, "--noise")
    assert reg.worker("--once").wait(timeout=300) == 0
    state = reg.profile_state(digest)
    assert state["state"] == "disagree", state  # a finding, not a mere failure
    assert "refused to run it deterministically" in state["finding"]
    [error] = state["failed"]
    assert error.startswith("nondeterministic:") and "RandomUniform" in error
    assert reg.reproducibility_predicates(digest) == []
    history = reg.cli("history", NAME, "--jsonl")
    assert '"action": "nondeterministic"' in history and "RandomUniform" in history
    assert "run 1/3" not in reg.log_of(0)
    assert 'reliquary_nondeterministic_total{profile="cpu-tensorflow"} 1.0' in reg.api("/metrics")
    reg.cli(
        "promote",
        f"{NAME}@v1",
        "--channel",
        "production",
        "--reason",
        "x",
        role="governor",
        expect=5,
    )


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_tampered_blob_is_refused_before_anything_runs(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(ONE_WORKER, RELIQUARY_JOB_MAX_ATTEMPTS="1")
    source, digest = trust_score(reg, tmp_path)
    graph = (source / "model" / "saved_model.pb").read_bytes()
    blobs = Path(reg.server.env["RELIQUARY_DATA_DIR"]) / "blobs"
    [stored] = [p for p in blobs.rglob("*") if p.is_file() and p.read_bytes() == graph]
    tampered = bytearray(graph)
    tampered[100] ^= 0x01
    stored.chmod(0o644)
    stored.write_bytes(bytes(tampered))
    assert reg.worker("--once").wait(timeout=300) == 0
    state = reg.profile_state(digest)
    assert state["state"] == "failed", state
    assert "refusing before running anything" in state["failed"][0]
    assert "run 1/3" not in reg.log_of(0) and reg.reproducibility_predicates(digest) == []


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_killed_workers_job_is_redone_and_a_stopped_worker_finishes_its_job(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(ONE_WORKER, RELIQUARY_JOB_LEASE="4s")
    _, digest = trust_score(reg, tmp_path)
    doomed = reg.worker("--runs", "20")
    reg.wait_for(lambda: reg.profile_state(digest)["state"] == "running")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    rescuer = reg.worker("--max-jobs", "1")
    assert rescuer.wait(timeout=300) == 0, reg.log_of(1)
    state = reg.profile_state(digest)
    assert state["state"] == "attested" and state["agreeing_workers"] == 1, state
    [job] = reg.jobs(digest)
    assert job["attempts"] == 2 and job["state"] == "attested"

    # SIGTERM mid-job: the worker finishes the job it holds, then exits
    httpx.post(
        f"{reg.server.url}/v1/artifacts/{digest}/verify",
        json={"profile": "cpu-tensorflow"},
        headers={"authorization": f"Bearer {reg.tokens['publisher']}"},
    ).raise_for_status()
    polite = reg.worker()
    reg.wait_for(lambda: "run 1/3" in reg.log_of(2))
    polite.send_signal(signal.SIGTERM)
    assert polite.wait(timeout=300) == 0
    assert "attested in" in reg.log_of(2)
    assert reg.profile_state(digest)["agreeing_workers"] == 2


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_bad_setups_are_refused_with_what_to_do(
    start_registry: Callable[..., Registry], tmp_path: Path
) -> None:
    reg = start_registry(ONE_WORKER)
    model = tmp_path / "m"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"not really a graph")
    reg.cli("push", str(model), "--name", NAME, "--version", "v0")
    wrong = reg.cli(
        *("push", str(model), "--name", NAME, "--version", "v1"),
        *("--engine", "tensorflow-savedmodel", "--reference-inputs", f"{NAME}@v0"),
        expect=2,
    )
    assert "--kind reference-inputs" in wrong
    # a model without reference inputs gets a job, which fails saying what is missing
    out = reg.cli(
        *("push", str(model), "--name", NAME, "--version", "v2", "--json"),
        *("--engine", "tensorflow-savedmodel", "--sign-key", str(reg.publisher_key)),
    )
    digest = json.loads(out.splitlines()[0])["digest"]
    assert reg.worker("--once").wait(timeout=120) == 0
    [error] = reg.profile_state(digest)["failed"]
    assert "names no reference inputs" in error and "--reference-inputs" in error
    # a worker whose key nobody registered does not start
    stranger = tmp_path / "stranger.pem"
    reg.cli("keys", "generate", "--out", str(stranger))
    refused = subprocess.run(
        [WORKER, "run", "--profile", "cpu-tensorflow", "--key", str(stranger), "--once"],
        env=reg.env("admin"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 5 and "--role worker" in refused.stderr
