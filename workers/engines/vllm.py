"""cpu-vllm and cuda-vllm: vLLM generating from prompts; token ids are the output.

Requests are served the way the validators' deterministic inference server serves them:
one at a time (``max_num_seqs=1``, one ``generate`` call per prompt, in order, no prefix
cache shared between them), so a prompt's tokens do not depend on the other prompts.

Determinism controls, each checked in this process (a Refusal when one is not applied)
and recorded in ``determinism``: the dtype (the manifest's ``runtime.dtype``, default
float32), eager mode, a fixed seed, temperature 0 — or above 0 only with a seed —,
concurrency 1 and batch 1, ``max_model_len``, ``PYTHONHASHSEED=0``, one MKL and one
OpenBLAS thread. cpu-vllm hides every GPU; cuda-vllm needs one and sets
``VLLM_BATCH_INVARIANT=1``.

Engine limits come from the model and the prompts, never from a constant:
``max_model_len`` is the longest prompt's token count (the model's own tokenizer) plus
``max_tokens``, or ``runtime.max_model_len`` when the manifest gives one; either must fit
the model's context (``max_position_embeddings`` or the other config.json keys vLLM reads).
A prompt that cannot fit, or an engine that refuses to start, is a Refusal without retry
that says why: trying again would fail the same way.

Reference inputs: ``prompts.json`` = ``{"prompts": [...], "sampling": {"temperature": 0,
"max_tokens": 16, "seed": 0}}``. Evaluation (``evaluate``): the dataset's prompts and
expected texts, temperature 0, seed 0, ``runtime.max_tokens`` or 32 new tokens.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.core.outputs import Tensor, token_tensors
from workers.engines import PINNED, pinned_controls
from workers.errors import Refusal, exception_line, transient

CPU_ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    **PINNED,
}
CUDA_ENV = {
    "VLLM_BATCH_INVARIANT": "1",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    **PINNED,
}
MAX_PROMPTS = 256
MAX_NEW_TOKENS = 4096
EVALUATION_MAX_TOKENS = 32
MEMORY_FRACTION = "RELIQUARY_VLLM_MEMORY_FRACTION"  # of RAM on CPU, of GPU memory on CUDA
# the config.json keys vLLM derives a model's context from; the smallest one present wins
CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
UNSET_TOKENIZER_LENGTH = 10**9  # transformers writes ~1e30 when a tokenizer has no limit


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float
    seed: int
    max_tokens: int


def read_reference(inputs: Path) -> tuple[list[str], Sampling]:
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
    if not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise Refusal(f"sampling.max_tokens must be 1..{MAX_NEW_TOKENS}")
    return prompts, Sampling(float(temperature), seed if isinstance(seed, int) else 0, max_tokens)


def run(
    model: Path, inputs: Path, runtime: dict[str, Any], *, cuda: bool
) -> tuple[list[Tensor], dict[str, Any]]:
    """The reference run: token ids generated for every reference prompt."""
    prompts, sampling = read_reference(inputs)
    engine = Engine.build(model, prompts, runtime, sampling, cuda=cuda)
    return token_tensors(engine.generate(prompts)[0]), engine.about


def evaluate(
    model: Path, prompts: list[str], expected: list[str], runtime: dict[str, Any], *, cuda: bool
) -> tuple[list[list[int]], list[str], list[list[int]], dict[str, Any]]:
    """An LLM evaluation: (generated token ids per prompt, generated texts, the expected
    texts' token ids under the model's tokenizer without special tokens, about), with the
    reference run's controls: temperature 0, seed 0, concurrency 1, ``runtime.max_tokens``
    (default 32) new tokens."""
    if not prompts or len(prompts) != len(expected):
        raise Refusal(
            f"the dataset has {len(prompts)} prompts and {len(expected)} expected texts; "
            "an LLM evaluation needs one expected text per prompt, and at least one"
        )
    max_tokens = runtime.get("max_tokens", EVALUATION_MAX_TOKENS)
    if not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise Refusal(f"runtime.max_tokens must be 1..{MAX_NEW_TOKENS}, not {max_tokens!r}")
    engine = Engine.build(model, prompts, runtime, Sampling(0.0, 0, max_tokens), cuda=cuda)
    token_ids, texts = engine.generate(prompts)
    expected_ids = [engine.tokenizer.encode(e, add_special_tokens=False) for e in expected]
    return token_ids, texts, [list(map(int, ids)) for ids in expected_ids], engine.about


@dataclass(frozen=True, slots=True)
class Engine:
    """A vLLM engine built under the determinism controls, for one set of prompts."""

    llm: Any
    params: Any
    tokenizer: Any
    about: dict[str, Any]

    @classmethod
    def build(
        cls,
        model: Path,
        prompts: list[str],
        runtime: dict[str, Any],
        sampling: Sampling,
        *,
        cuda: bool,
    ) -> Engine:
        dtype = str(runtime.get("dtype") or "float32")
        if dtype not in ("float32", "bfloat16", "float16"):
            raise Refusal(f"runtime.dtype {dtype!r} is not float32, bfloat16 or float16")
        controls = applied_controls(cuda=cuda)
        import torch

        if cuda and not torch.cuda.is_available():
            raise Refusal("cuda-vllm needs an NVIDIA GPU and none is visible", retry=True)
        if not cuda and (controls["cuda_visible_devices"] != "" or torch.cuda.is_available()):
            raise Refusal("a GPU is visible to the cpu-vllm profile; refusing to run")
        tokenizer = load_tokenizer(model)
        context = model_context(model)
        counts = [len(tokenizer.encode(p)) for p in prompts]
        max_model_len = fit(counts, sampling.max_tokens, context, runtime.get("max_model_len"))
        import vllm

        output = OutputTail()
        try:
            with output:
                llm = vllm.LLM(
                    model=str(model),
                    tokenizer=str(model),
                    dtype=dtype,
                    seed=sampling.seed,
                    enforce_eager=True,
                    max_num_seqs=1,
                    max_model_len=max_model_len,
                    enable_prefix_caching=False,
                    gpu_memory_utilization=float(
                        os.environ.get(MEMORY_FRACTION) or (0.85 if cuda else 0.15)
                    ),
                )
        except Exception as exc:
            raise start_failure(exc, output.text()) from exc
        params = vllm.SamplingParams(
            temperature=sampling.temperature, seed=sampling.seed, max_tokens=sampling.max_tokens
        )
        about = {
            "engine": {"name": "vllm", "version": vllm.__version__},
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "determinism": {
                "dtype": dtype,
                "enforce_eager": True,
                "seed": sampling.seed,
                "temperature": sampling.temperature,
                "max_tokens": sampling.max_tokens,
                "concurrency": 1,
                "batch": 1,
                "prefix_caching": False,
                "max_model_len": max_model_len,
                "context": context,
                "batch_invariant": cuda,
                **controls,
            },
        }
        return cls(llm, params, tokenizer, about)

    def generate(self, prompts: list[str]) -> tuple[list[list[int]], list[str]]:
        """Token ids and texts per prompt: one request at a time, in order."""
        token_ids, texts = [], []
        for prompt in prompts:
            [result] = self.llm.generate([prompt], self.params, use_tqdm=False)
            token_ids.append([int(t) for t in result.outputs[0].token_ids])
            texts.append(str(result.outputs[0].text))
        return token_ids, texts


def applied_controls(*, cuda: bool) -> dict[str, Any]:
    """The environment controls as this process sees them (``pinned_controls``, and
    ``VLLM_BATCH_INVARIANT`` on CUDA); Refusal if one is not applied."""
    also = {"VLLM_BATCH_INVARIANT": "1"} if cuda else {}
    return pinned_controls(also=also) | {
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def load_tokenizer(model: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model))
    except Exception as exc:  # transformers raises many kinds for a broken tokenizer
        raise Refusal(f"cannot load the model's tokenizer: {type(exc).__name__}: {exc}") from exc


def model_context(model: Path) -> int:
    """The positions the model supports: the smallest of vLLM's context keys in config.json
    (or its ``text_config``), capped by the tokenizer's ``model_max_length`` when it sets one.
    RoPE scaling factors are not applied: the context is never over-estimated."""
    try:
        config = json.loads((model / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refusal(f"the model has no readable config.json: {exc}") from exc
    if not isinstance(config, dict):
        raise Refusal("the model's config.json is not a JSON object")
    text = config.get("text_config")
    scope = text if isinstance(text, dict) else config
    found: dict[str, int] = {
        k: scope[k] for k in CONTEXT_KEYS if isinstance(scope.get(k), int) and scope[k] > 0
    }
    tokenizer_config = model / "tokenizer_config.json"
    if tokenizer_config.is_file():
        try:
            length = json.loads(tokenizer_config.read_text()).get("model_max_length")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            length = None
        if isinstance(length, int) and 0 < length < UNSET_TOKENIZER_LENGTH:
            found["tokenizer model_max_length"] = length
    if not found:
        raise Refusal(
            "the model's config.json names no context length (max_position_embeddings or "
            f"one of {', '.join(CONTEXT_KEYS[1:])}); add it to config.json"
        )
    return min(found.values())


def fit(counts: list[int], max_tokens: int, context: int, requested: Any) -> int:
    """``max_model_len`` for these prompt token counts: ``requested`` (the manifest's
    ``runtime.max_model_len``) when given, else the longest prompt plus ``max_tokens``.
    Refusal when it exceeds the model's context or a prompt cannot fit in it."""
    limit, what = context, f"the model's context of {context} positions"
    if requested is not None:
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
            raise Refusal(f"runtime.max_model_len must be a positive integer, not {requested!r}")
        if requested > context:
            raise Refusal(
                f"runtime.max_model_len {requested} exceeds the model's context of {context} "
                "positions (config.json); lower it or leave it out to derive it from the prompts"
            )
        limit, what = requested, f"runtime.max_model_len {requested}"
    longest = max(range(len(counts)), key=lambda i: counts[i])
    if counts[longest] + max_tokens > limit:
        raise Refusal(
            f"prompt {longest} has {counts[longest]} tokens; with max_tokens {max_tokens} it "
            f"needs {counts[longest] + max_tokens} positions and does not fit {what}; "
            "shorten the prompt or lower max_tokens"
        )
    return int(requested) if requested is not None else counts[longest] + max_tokens


# -- why the engine failed ------------------------------------------------------------------
ENGINE_WRAPPER = "Engine core initialization failed"


def start_failure(exc: BaseException, output: str) -> Refusal:
    """The refusal for an engine that did not start, quoting its own error line
    (``engine_error``): retried when the host ran short (memory, GPU memory or KV cache
    on a shared device, disk; ``workers.errors.transient``), final otherwise (the same
    model and runtime would fail the same way)."""
    line = engine_error(exc, output)
    return Refusal(f"vLLM did not start: {line}", retry=transient(line))


def engine_error(exc: BaseException, output: str) -> str:
    """The engine's own error line: the exception's message, or, for vLLM's "Engine core
    initialization failed" wrapper, the root cause its engine-core process printed."""
    if ENGINE_WRAPPER in str(exc):
        root = exception_line(output)
        if root:
            return root
    errors = getattr(exc, "errors", None)  # pydantic's ValidationError: vLLM's config checks
    details = errors() if callable(errors) else None
    if isinstance(details, list) and details and isinstance(details[0], dict):
        message = re.sub(r"^Value error, ", "", str(details[0].get("msg", "")))
    else:
        message = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {message}"[:1000]


class OutputTail:
    """While entered, file descriptors 1 and 2 (ours and those of every process started
    meanwhile, such as vLLM's engine core and its workers, which log to stdout) go through
    pipes that threads copy to the real destinations for the life of this process, keeping
    the last 64 KiB of both for ``text()``."""

    KEEP = 65536
    FDS = (1, 2)

    def __init__(self) -> None:
        self._tail = b""
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._saved: dict[int, int] = {}

    def __enter__(self) -> OutputTail:
        for fd in self.FDS:
            (sys.stdout if fd == 1 else sys.stderr).flush()
            self._saved[fd] = os.dup(fd)
            read, write = os.pipe()
            thread = threading.Thread(target=self._copy, args=(read, self._saved[fd]), daemon=True)
            thread.start()
            self._threads.append(thread)
            os.dup2(write, fd)
            os.close(write)
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.FDS:  # the engine's processes keep the pipes; the threads copy on
            (sys.stdout if fd == 1 else sys.stderr).flush()
            os.dup2(self._saved[fd], fd)

    def _copy(self, read: int, destination: int) -> None:
        while chunk := os.read(read, self.KEEP):
            os.write(destination, chunk)
            with self._lock:
                self._tail = (self._tail + chunk)[-self.KEEP :]
        os.close(read)

    def text(self, wait_seconds: float = 2.0) -> str:
        """What went through so far, after up to ``wait_seconds`` for exited processes'
        last lines to drain (at once when every writer is gone)."""
        deadline = time.monotonic() + wait_seconds
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            return self._tail.decode(errors="replace")
