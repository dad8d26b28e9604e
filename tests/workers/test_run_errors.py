"""What a crashed run reports: the engine's own error line, and whether to try again."""

from __future__ import annotations

import pytest

from workers.errors import engine_error_line, exception_line, transient
from workers.runs import crash

VLLM_TRACE = """\
Traceback (most recent call last):
  File "/x/vllm/v1/engine/core.py", line 700, in run_engine_core
    raise e
ERROR 01-02 03:04:05 [core.py:712] ValueError: The decoder prompt (length 300) is longer than the maximum model length of 256.
Traceback (most recent call last):
  File "/x/workers/child.py", line 30, in main
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_the_engine_line_beats_a_generic_wrapper() -> None:
    assert engine_error_line(VLLM_TRACE) == (
        "ValueError: The decoder prompt (length 300) is longer than the maximum model length of 256."
    )


def test_without_an_exception_line_the_tail_is_reported() -> None:
    assert engine_error_line("segfault somewhere\n") == "segfault somewhere"


def test_a_python_exception_fails_once_and_a_signal_may_be_retried() -> None:
    raised = crash(
        "run 1", 1, "Traceback...\ntensorflow.python.framework.errors_impl.NotFoundError: op X\n"
    )
    assert raised.retry is False
    assert raised.reason == "run 1 failed with exit code 1: NotFoundError: op X"
    killed = crash("run 2", -9, "")
    assert killed.retry is True and "SIGKILL" in killed.reason
    odd = crash("run 3", 2, "no traceback here")
    assert odd.retry is True and "no traceback here" in odd.reason


@pytest.mark.parametrize(
    "line",
    [
        "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating "
        "tensor with shape[10000,768] and type float",
        "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 29.3 GiB for an array",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "RuntimeError: CUDA error: out of memory",
        "OSError: [Errno 28] No space left on device",
        "OSError: [Errno 24] Too many open files",
        "OSError: [Errno 12] Cannot allocate memory",
        "ValueError: No available memory for the cache blocks. Try increasing "
        "`gpu_memory_utilization` when initializing the engine",
        "ValueError: Free memory on device cuda:0 (3.1/139.8 GiB) on startup is less than "
        "desired GPU memory utilization (0.85, 118.8 GiB)",
        "ConnectionResetError: [Errno 104] Connection reset by peer",
    ],
)
def test_a_host_that_ran_short_is_retried_with_the_engine_line(line: str) -> None:
    raised = crash("the candidate run", 1, f"Traceback (most recent call last):\n{line}\n")
    assert raised.retry is True
    assert raised.reason == f"the candidate run failed with exit code 1: {exception_line(line)}"


@pytest.mark.parametrize(
    "line",
    [
        "ValueError: The decoder prompt (length 300) is longer than the maximum model length",
        "tensorflow.python.framework.errors_impl.InvalidArgumentError: Matrix size-incompatible",
        "KeyError: 'trust_score'",
        "SafetensorError: Error while deserializing header: incomplete metadata",
    ],
)
def test_an_error_of_the_job_itself_fails_it_once(line: str) -> None:
    assert transient(line) is False
    assert crash("run", 1, f"{line}\n").retry is False
