"""One run in a fresh process, in one of two modes.

Reproduce: ``python -m workers.child PROFILE MODEL INPUTS RUNTIME OUT`` writes into OUT
``outputs.bin`` (the canonical output encoding) and ``about.json`` (engine, device,
determinism settings applied, decoded values), exit 0.

Evaluate: ``python -m workers.child evaluate PROFILE MODEL DATASET DESCRIPTION RUNTIME OUT``
predicts every sample of the dataset directory DATASET (its files already checked
against DESCRIPTION, the manifest's ``dataset`` JSON) and writes ``predictions.bin``
(the canonical encoding of the predictions: for tensor models the outputs the labels
name, each with first dimension = samples; for LLMs ``token_tensors`` of the generated
ids) and ``about.json`` (engine, device, determinism; LLMs also the generated texts and
the expected completions' token ids), exit 0.

Either mode may instead write ``refusal.json`` (reason, retry, nondeterministic), exit 3.
Any other exit is a crash whose stderr the parent reports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from registry.core.outputs import Tensor, encode_outputs, output_values, token_tensors
from registry.core.profiles import LLM_PROFILES
from workers.errors import Refusal

REFUSED = 3
EVALUATE = "evaluate"  # argv[0] of the evaluate mode (never a profile name)


def reproduce(argv: list[str]) -> None:
    profile, model, inputs, runtime_json, out = argv
    out_dir = Path(out)
    runtime = json.loads(runtime_json)
    if profile == "cpu-tensorflow":
        from workers.engines import tensorflow

        tensors, about = tensorflow.run(Path(model), Path(inputs), runtime)
    elif profile in LLM_PROFILES:
        from workers.engines import vllm

        tensors, about = vllm.run(Path(model), Path(inputs), runtime, cuda=profile == "cuda-vllm")
    else:
        raise Refusal(f"unknown profile {profile!r}")
    (out_dir / "outputs.bin").write_bytes(encode_outputs(tensors))
    about["values"] = output_values(tensors)
    (out_dir / "about.json").write_text(json.dumps(about))


def _texts(path: Path) -> list[str]:
    texts: list[str] = json.loads(path.read_text())
    return texts


def evaluate(argv: list[str]) -> None:
    profile, model, data, description_json, runtime_json, out = argv
    out_dir, root = Path(out), Path(data)
    description: dict[str, Any] = json.loads(description_json)
    runtime = json.loads(runtime_json)
    features = {n: root / f["path"] for n, f in description["features"].items()}
    labels = {n: root / f["path"] for n, f in description["labels"].items()}
    tensors: list[Tensor]
    if profile == "cpu-tensorflow":
        from workers.engines import tensorflow

        tensors, about = tensorflow.evaluate(
            Path(model), features, sorted(labels), int(description["samples"]), runtime
        )
    elif profile in LLM_PROFILES:
        if set(features) != {"prompts"} or set(labels) != {"expected"}:
            raise Refusal(
                f"an LLM dataset has features {{prompts}} and labels {{expected}} (text "
                f"files); this one has features {sorted(features)}, labels {sorted(labels)}"
            )
        from workers.engines import vllm

        expected = _texts(labels["expected"])
        generated, texts, expected_ids, about = vllm.evaluate(
            Path(model),
            _texts(features["prompts"]),
            expected,
            runtime,
            cuda=profile == "cuda-vllm",
        )
        tensors = token_tensors(generated)
        about = {**about, "texts": texts, "expected_ids": expected_ids}
    else:
        raise Refusal(f"unknown profile {profile!r}")
    (out_dir / "predictions.bin").write_bytes(encode_outputs(tensors))
    (out_dir / "about.json").write_text(json.dumps(about))


def main(argv: list[str]) -> int:
    out_dir = Path(argv[-1])
    try:
        if argv and argv[0] == EVALUATE:
            evaluate(argv[1:])
        else:
            reproduce(argv)
    except Refusal as refusal:
        (out_dir / "refusal.json").write_text(
            json.dumps(
                {
                    "reason": refusal.reason,
                    "retry": refusal.retry,
                    "nondeterministic": refusal.nondeterministic,
                }
            )
        )
        return REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
