"""The vLLM engine's limits and failure lines, decided before (or without) an engine:
the context from config.json, max_model_len from the prompts, and the error line a
refusal quotes from what vLLM printed. Fast: no model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from workers.engines.vllm import engine_error, fit, model_context, start_failure
from workers.errors import Refusal, exception_line

# what vLLM 0.32 (CPU) printed when a model's weights file was cut short: the worker
# process's error, then the engine core's wrapper of it, then the parent's wrapper
TRUNCATED_WEIGHTS = """\
(Worker pid=11948) ERROR 11-30 22:23:45 [multiproc_executor.py:953] WorkerProc failed to start.
(Worker pid=11948) ERROR 11-30 22:23:45 [multiproc_executor.py:953] Traceback (most recent call last):
(Worker pid=11948) ERROR 11-30 22:23:45 [multiproc_executor.py:953] safetensors._safetensors_rust.\
SafetensorError: Error while deserializing header: incomplete metadata, file not fully covered
(EngineCore pid=11752) ERROR 11-30 22:23:47 [core.py:1510] EngineCore failed to start.
(EngineCore pid=11752) ERROR 11-30 22:23:47 [core.py:1510] Exception: WorkerProc initialization \
failed due to an exception in a background process. See stack trace for root cause.
Process EngineCore:
Traceback (most recent call last):
Exception: WorkerProc initialization failed due to an exception in a background process. \
See stack trace for root cause.
"""


def write_model(
    tmp_path: Path, config: dict[str, object], tokenizer_max: int | None = None
) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    if tokenizer_max is not None:
        (tmp_path / "tokenizer_config.json").write_text(
            json.dumps({"model_max_length": tokenizer_max})
        )
    return tmp_path


def test_the_context_is_the_smallest_length_the_model_declares(tmp_path: Path) -> None:
    model = write_model(tmp_path, {"max_position_embeddings": 128, "n_positions": 512})
    assert model_context(model) == 128
    # transformers writes ~1e30 for "no limit": it does not count
    write_model(tmp_path, {"max_position_embeddings": 128}, tokenizer_max=int(1e30))
    assert model_context(model) == 128
    write_model(tmp_path, {"max_position_embeddings": 128}, tokenizer_max=64)
    assert model_context(model) == 64
    write_model(tmp_path, {"text_config": {"max_position_embeddings": 4096}})
    (tmp_path / "tokenizer_config.json").unlink()
    assert model_context(model) == 4096


def test_a_model_without_a_context_length_is_refused_saying_what_to_add(tmp_path: Path) -> None:
    with pytest.raises(Refusal, match=r"names no context length.*add it to config.json"):
        model_context(write_model(tmp_path, {"hidden_size": 128}))


def test_max_model_len_is_the_longest_prompt_plus_max_tokens() -> None:
    assert fit([4, 9, 3], 16, 128, None) == 25
    assert fit([4, 9, 3], 16, 128, 100) == 100  # the manifest's runtime.max_model_len


def test_a_prompt_that_cannot_fit_is_refused_naming_it_and_the_context() -> None:
    with pytest.raises(Refusal) as refused:
        fit([4, 120, 3], 16, 128, None)
    assert refused.value.retry is False
    assert refused.value.reason.startswith(
        "prompt 1 has 120 tokens; with max_tokens 16 it needs 136 positions and does not "
        "fit the model's context of 128 positions"
    )
    with pytest.raises(Refusal, match=r"prompt 1 has 40 tokens.*runtime.max_model_len 32"):
        fit([4, 40], 16, 128, 32)


def test_a_max_model_len_beyond_the_context_is_refused() -> None:
    with pytest.raises(Refusal, match=r"runtime.max_model_len 256 exceeds the model's context"):
        fit([4], 16, 128, 256)
    with pytest.raises(Refusal, match="must be a positive integer"):
        fit([4], 16, 128, "256")


def test_the_root_cause_is_the_worker_process_error_not_vllms_wrappers() -> None:
    wrapper = RuntimeError(
        "Engine core initialization failed. See root cause above. Failed core proc(s): {}"
    )
    assert engine_error(wrapper, TRUNCATED_WEIGHTS) == (
        "SafetensorError: Error while deserializing header: incomplete metadata, "
        "file not fully covered"
    )
    assert exception_line("\x1b[31mValueError: bad head_dim 16\x1b[0m\nshutting down") == (
        "ValueError: bad head_dim 16"
    )
    assert engine_error(wrapper, "no error line here").startswith(
        "RuntimeError: Engine core initialization failed"
    )


class Config(BaseModel):
    max_model_len: int

    @field_validator("max_model_len")
    @classmethod
    def fits(cls, value: int) -> int:
        raise ValueError(f"User-specified max_model_len ({value}) is greater than 128")


def test_a_validation_error_is_quoted_by_its_message_line() -> None:
    with pytest.raises(ValidationError) as raised:
        Config(max_model_len=256)
    assert engine_error(raised.value, "") == (
        "ValidationError: User-specified max_model_len (256) is greater than 128"
    )


def test_an_engine_that_ran_out_of_memory_is_retried_any_other_start_failure_is_final() -> None:
    wrapper = RuntimeError(
        "Engine core initialization failed. See root cause above. Failed core proc(s): {}"
    )
    kv_cache = (
        "(EngineCore pid=7) ERROR [core.py:1510] ValueError: To serve at least one request "
        "with the model's max seq len (4096), (2.00 GiB KV cache is needed, which is larger "
        "than the available KV cache memory (0.50 GiB).\n"
    )
    short = start_failure(wrapper, kv_cache)
    assert short.retry is True
    assert short.reason.startswith("vLLM did not start: ValueError: To serve at least one")
    oom = start_failure(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "")
    assert oom.retry is True and "CUDA out of memory" in oom.reason
    broken = start_failure(wrapper, TRUNCATED_WEIGHTS)
    assert broken.retry is False
    assert broken.reason == (
        "vLLM did not start: SafetensorError: Error while deserializing header: incomplete "
        "metadata, file not fully covered"
    )
