"""Why a worker does not attest: every refusal names its reason and whether another try may help."""

from __future__ import annotations

import re


class Refusal(Exception):
    """The worker will not attest this job.

    ``retry``: another attempt (perhaps by another worker) may succeed, e.g. a network
    error or a worker without the engine; False when the artifact itself is at fault
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


def engine_error_line(stderr: str) -> str:
    """The engine's own error line from a crashed run's stderr (``exception_line``), or,
    when there is none, the last ``STDERR_TAIL`` characters of it."""
    line = exception_line(stderr)
    return line if line is not None else stderr[-STDERR_TAIL:].strip()
