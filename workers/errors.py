"""Why a worker does not attest: every refusal names its reason and whether another try may help."""

from __future__ import annotations


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
