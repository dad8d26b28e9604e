"""Why a worker does not attest: every refusal names its reason and whether another try may help."""

from __future__ import annotations

import re


class Refusal(Exception):
    """The worker will not attest this job.

    ``retry``: another attempt (perhaps by another worker) may succeed, e.g. a network
    error, a worker without the engine, or a host that ran short of memory or disk
    (``transient``); False when the artifact itself is at fault
    (missing reference inputs, temperature > 0 without a seed, a nondeterministic op).
    ``nondeterministic``: the engine refused an op it cannot run deterministically.
    """

    def __init__(self, reason: str, *, retry: bool = False, nondeterministic: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.nondeterministic = nondeterministic


STDERR_TAIL = 1500  # characters of a crashed run's stderr reported when no error line is found
_ERROR_LINE = re.compile(
    r"(?:^|[\s\](|])((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception)): (\S.*)$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colours some engines log with
_GENERIC = (  # wrappers that re-raise an engine's own error under a vaguer line
    re.compile(r"Engine core initialization failed"),
    re.compile(r"root cause", re.IGNORECASE),
    re.compile(r"^RuntimeError: Worker failed with error"),
)


def exception_line(stderr: str) -> str | None:
    """The last ``SomethingError: message`` (or ``…Exception: …``) line of a traceback in
    ``stderr`` that is not a generic wrapper around another error (vLLM's engine core wraps
    its worker process's error, and the parent wraps the engine core's: "… See root cause
    above"), without module prefix or colours; None when no line has that form (the
    process did not end in a Python exception)."""
    found = []
    for line in _ANSI.sub("", stderr).splitlines():
        match = _ERROR_LINE.search(line.rstrip())
        if match:
            found.append(f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2).strip()}"[:1000])
    specific = [line for line in found if not any(g.search(line) for g in _GENERIC)]
    chosen = specific or found
    return chosen[-1] if chosen else None


# Errors of the host, not of the job: resources another moment or another worker may have
# (memory, GPU memory, KV cache, disk, file descriptors) and the network. Matched anywhere
# in an error line, case-insensitively.
_TRANSIENT = re.compile(
    "|".join(
        (
            r"MemoryError",  # MemoryError, numpy's _ArrayMemoryError, torch's OutOfMemoryError
            r"ResourceExhausted",  # TensorFlow's ResourceExhaustedError (OOM when allocating)
            r"\bOOM\b",
            r"out of memory",  # CUDA, torch, the kernel's OOM killer
            r"unable to allocate",
            r"cannot allocate",
            r"failed to allocate",
            r"alloc(?:ation)?_?failed",  # CUBLAS_STATUS_ALLOC_FAILED, "allocation failed"
            r"cudaErrorMemoryAllocation",
            r"available KV cache memory",  # vLLM: a sequence's KV cache does not fit
            r"no available memory for the cache blocks",  # vLLM: no room for a KV cache
            r"free memory on device",  # vLLM: other processes hold the GPU's memory
            r"no space left on device",
            r"disk quota exceeded",
            r"too many open files",
            r"resource temporarily unavailable",
            r"\[Errno (?:11|12|23|24|28|122)\]",  # EAGAIN ENOMEM ENFILE EMFILE ENOSPC EDQUOT
            r"\bE(?:NOSPC|NOMEM|MFILE|NFILE|AGAIN|DQUOT)\b",
            r"^Killed$",
            r"Connection(?:Error|ResetError|RefusedError|AbortedError)",
            r"connection (?:reset|refused|aborted)",
            r"BrokenPipeError",
            r"TimeoutError",
            r"temporary failure in name resolution",
        )
    ),
    re.IGNORECASE,
)


def transient(line: str) -> bool:
    """Whether an engine's error line (``exception_line``) is the host's, not the job's:
    memory (RAM, GPU, vLLM's KV cache), disk or file descriptors ran out, or the network
    failed. Such a failure may not happen again, here later or on another worker, so the
    job is retried; any other error line would repeat identically on the same inputs."""
    return _TRANSIENT.search(line.strip()) is not None


def engine_error_line(stderr: str) -> str:
    """The engine's own error line from a crashed run's stderr (``exception_line``), or,
    when there is none, the last ``STDERR_TAIL`` characters of it."""
    line = exception_line(stderr)
    return line if line is not None else stderr[-STDERR_TAIL:].strip()
