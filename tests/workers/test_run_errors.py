"""What a crashed run reports: the engine's own error line, and whether to try again."""

from __future__ import annotations

from workers.errors import engine_error_line
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
