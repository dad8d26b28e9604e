"""cpu-vllm and cuda-vllm: vLLM generating from the reference prompts; token ids are the output.

Determinism controls: pinned dtype (the manifest's ``runtime.dtype``, default float32),
eager mode, a fixed seed, a fixed batch (every prompt in one ``generate`` call),
temperature 0 — or a temperature above 0 only with a seed. cpu-vllm hides every GPU;
cuda-vllm needs one and sets ``VLLM_BATCH_INVARIANT=1``.

Reference inputs: ``prompts.json`` = ``{"prompts": [...], "sampling": {"temperature": 0,
"max_tokens": 16, "seed": 0}}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from registry.core.outputs import Tensor, token_tensors
from workers.errors import Refusal

CPU_ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "PYTHONHASHSEED": "0",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
CUDA_ENV = {
    "VLLM_BATCH_INVARIANT": "1",
    "PYTHONHASHSEED": "0",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
MAX_PROMPTS = 256
MEMORY_FRACTION = "RELIQUARY_VLLM_MEMORY_FRACTION"  # of RAM on CPU, of GPU memory on CUDA


def read_reference(inputs: Path) -> tuple[list[str], dict[str, Any]]:
    """The prompts and sampling parameters. Raises Refusal when they cannot be deterministic."""
    path = inputs / "prompts.json"
    if not path.is_file():
        raise Refusal("the reference inputs have no prompts.json")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refusal(f"prompts.json is not JSON: {exc}") from exc
    prompts = doc.get("prompts") if isinstance(doc, dict) else None
    sampling = doc.get("sampling", {}) if isinstance(doc, dict) else None
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise Refusal("prompts.json must hold a non-empty list of prompt strings")
    if len(prompts) > MAX_PROMPTS or not isinstance(sampling, dict):
        raise Refusal(f"prompts.json: at most {MAX_PROMPTS} prompts and a sampling object")
    temperature = sampling.get("temperature", 0.0)
    seed = sampling.get("seed")
    if not isinstance(temperature, int | float) or temperature < 0:
        raise Refusal("sampling.temperature must be a number >= 0")
    if temperature > 0 and not isinstance(seed, int):
        raise Refusal(
            f"sampling.temperature is {temperature} without a seed: the output cannot be "
            "reproduced; use temperature 0 or give sampling.seed"
        )
    max_tokens = sampling.get("max_tokens", 16)
    if not isinstance(max_tokens, int) or not 1 <= max_tokens <= 4096:
        raise Refusal("sampling.max_tokens must be 1..4096")
    return prompts, {
        "temperature": float(temperature),
        "seed": seed if isinstance(seed, int) else 0,
        "max_tokens": max_tokens,
    }


def run(
    model: Path, inputs: Path, runtime: dict[str, Any], *, cuda: bool
) -> tuple[list[Tensor], dict[str, Any]]:
    prompts, sampling = read_reference(inputs)
    dtype = str(runtime.get("dtype") or "float32")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise Refusal(f"runtime.dtype {dtype!r} is not float32, bfloat16 or float16")
    import torch

    if cuda and not torch.cuda.is_available():
        raise Refusal("cuda-vllm needs an NVIDIA GPU and none is visible", retry=True)
    if not cuda and (os.environ.get("CUDA_VISIBLE_DEVICES") != "" or torch.cuda.is_available()):
        raise Refusal("a GPU is visible to the cpu-vllm profile; refusing to run")
    if cuda and os.environ.get("VLLM_BATCH_INVARIANT") != "1":
        raise Refusal("VLLM_BATCH_INVARIANT=1 could not be applied")
    import vllm

    llm = vllm.LLM(
        model=str(model),
        tokenizer=str(model),
        dtype=dtype,
        seed=sampling["seed"],
        enforce_eager=True,
        max_num_seqs=len(prompts),
        max_model_len=int(runtime.get("max_model_len") or 256),
        gpu_memory_utilization=float(os.environ.get(MEMORY_FRACTION) or (0.85 if cuda else 0.15)),
    )
    params = vllm.SamplingParams(
        temperature=sampling["temperature"],
        seed=sampling["seed"],
        max_tokens=sampling["max_tokens"],
    )
    results = llm.generate(prompts, params, use_tqdm=False)
    token_ids = [list(r.outputs[0].token_ids) for r in results]
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    about = {
        "engine": {"name": "vllm", "version": vllm.__version__},
        "device": device,
        "determinism": {
            "dtype": dtype,
            "enforce_eager": True,
            "seed": sampling["seed"],
            "temperature": sampling["temperature"],
            "max_tokens": sampling["max_tokens"],
            "batch": len(prompts),
            "batch_invariant": cuda,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        },
    }
    return token_tensors(token_ids), about
