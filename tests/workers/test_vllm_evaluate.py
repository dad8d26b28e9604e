"""The LLM evaluation entry point (``workers.engines.vllm.evaluate``) in fresh processes,
as the worker's evaluate child calls it, on a tiny random-weight Llama of 128 positions."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer

from tests.support.workers import REPO, Registry, build_example
from workers.engines.vllm import CPU_ENV

pytestmark = pytest.mark.slow

PROMPTS = ["validators must run", "a registry pins models", "the trust score of"]
EXPECTED = ["bit identical inference", "by hash", "an account is computed from its history"]
SCRIPT = """
import json, sys
from pathlib import Path

if __name__ == "__main__":
    from workers.engines import vllm
    from workers.errors import Refusal

    model, out = Path(sys.argv[1]), Path(sys.argv[2])
    doc = json.loads(sys.argv[3])
    try:
        ids, texts, expected, about = vllm.evaluate(
            model, doc["prompts"], doc["expected"], {"max_tokens": 8}, cuda=False
        )
    except Refusal as refusal:
        out.write_text(json.dumps({"refusal": refusal.reason, "retry": refusal.retry}))
    else:
        out.write_text(json.dumps(
            {"ids": ids, "texts": texts, "expected": expected, "about": about}
        ))
"""


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = build_example("tiny_llama.py", tmp_path_factory.mktemp("llama"), "--context", "128")
    return out / "model"


def evaluate_in_fresh_process(
    model: Path, tmp_path: Path, name: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    script, out = tmp_path / "evaluate.py", tmp_path / f"{name}.json"
    script.write_text(SCRIPT)
    doc = json.dumps({"prompts": PROMPTS, "expected": EXPECTED})
    done = subprocess.run(
        [sys.executable, str(script), str(model), str(out), doc],
        env=env if env is not None else {**os.environ, **CPU_ENV, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_evaluate_is_deterministic_across_fresh_processes(tiny_llama: Path, tmp_path: Path) -> None:
    first = evaluate_in_fresh_process(tiny_llama, tmp_path, "first")
    second = evaluate_in_fresh_process(tiny_llama, tmp_path, "second")
    assert "refusal" not in first, first

    tokenizer = Tokenizer.from_file(str(tiny_llama / "tokenizer.json"))
    assert first["expected"] == [
        tokenizer.encode(e, add_special_tokens=False).ids for e in EXPECTED
    ]
    assert len(first["ids"]) == len(first["texts"]) == len(PROMPTS)
    assert all(len(ids) == 8 and all(0 <= t < 512 for t in ids) for ids in first["ids"])
    assert all(isinstance(text, str) and text for text in first["texts"])
    assert (second["ids"], second["texts"]) == (first["ids"], first["texts"])

    determinism = first["about"]["determinism"]
    longest = max(len(tokenizer.encode(p).ids) for p in PROMPTS)
    assert determinism["max_model_len"] == longest + 8 and determinism["context"] == 128
    assert determinism["concurrency"] == 1 and determinism["temperature"] == 0.0
    assert determinism["seed"] == 0 and determinism["max_tokens"] == 8
    assert first["about"]["engine"]["name"] == "vllm" and first["about"]["device"] == "cpu"


def test_evaluate_refuses_where_a_determinism_control_is_not_applied(
    tiny_llama: Path, tmp_path: Path
) -> None:
    env = {**os.environ, **CPU_ENV, "PYTHONPATH": str(REPO)}
    del env["OPENBLAS_NUM_THREADS"]
    answer = evaluate_in_fresh_process(tiny_llama, tmp_path, "unpinned", env)
    # the worker sets it: a process without it is the worker's fault, retried elsewhere
    assert "OPENBLAS_NUM_THREADS=1" in answer["refusal"] and answer["retry"] is True, answer


MEASURED = b"""
[channels.production]
require_publisher_signature = true

[channels.production.evaluation]
source = "worker"
dataset = "veid/prompts@v1"
profile = "cpu-vllm"
min_workers = 1
min_samples = 3
thresholds = { exact_match = ">=0", token_agreement = ">=0" }
"""


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_a_cpu_vllm_worker_measures_an_llm_on_a_prompt_set_and_the_gate_reads_it(
    start_registry: Callable[..., Registry], tiny_llama: Path, tmp_path: Path
) -> None:
    """The whole LLM path as a worker runs it: the prompt set pushed with `reliquary push
    --kind dataset`, an evaluate job queued by the policy, a cpu-vllm worker process that
    generates one prompt at a time in a fresh child, exact match and token agreement in
    a signed evaluation/v1 that the channel's gate reads."""
    reg = start_registry(MEASURED)
    data = tmp_path / "prompts"
    data.mkdir()
    (data / "prompts.json").write_text(json.dumps(PROMPTS))
    (data / "expected.json").write_text(json.dumps(EXPECTED))
    out = reg.cli(
        "push", str(data), "--kind", "dataset", "--name", "veid/prompts", "--version", "v1"
    )
    assert "dataset: 3 samples (test)" in out, out
    source = tmp_path / "llama"
    shutil.copytree(tiny_llama.parent, source)
    digest = reg.push_model(source, "v1", "vllm")
    [job] = reg.jobs(digest)
    assert (job["task"], job["profile"], job["state"]) == ("evaluate", "cpu-vllm", "queued")
    assert reg.worker("--once", profile="cpu-vllm").wait(timeout=600) == 0, reg.log_of(0)[-3000:]
    status = reg.api(f"/v1/artifacts/{digest}/status?channel=production")
    evaluation = status["evaluation"]
    assert evaluation["state"] == "measured", (evaluation, reg.log_of(0)[-3000:])
    assert status["promotable"] is True, status["requirements"]
    for metric in ("exact_match", "token_agreement"):
        value = evaluation["metrics"][metric]["value"]
        assert 0.0 <= value <= 1.0 and evaluation["metrics"][metric]["met"] is True
    [predicate] = [
        json.loads(base64.b64decode(a["envelope"]["payload"]))["predicate"]
        for a in reg.api(f"/v1/artifacts/{digest}/attestations")["attestations"]
        if a["predicate_type"].endswith("evaluation/v1")
    ]
    assert predicate["samples"] == 3 and predicate["predictions"]["count"] == 3
    assert predicate["profile"] == "cpu-vllm" and predicate["engine"]["name"] == "vllm"
    assert predicate["determinism"]["concurrency"] == 1
    assert predicate["determinism"]["pythonhashseed"] == "0"
