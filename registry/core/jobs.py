"""The states of a verification job (``registry/domain/jobs`` runs them).

Invariants: a job is ``queued`` when made; only a claim makes it ``running`` (leased to
one worker); ``attested`` and ``failed`` are final. A ``running`` job whose lease
expired is claimable again, or turns ``failed`` if that was its last attempt; a worker
that gives a job back while attempts remain returns it to ``queued``. The values are
the strings the API answers and the database stores.
"""

from __future__ import annotations

from enum import StrEnum


class JobTask(StrEnum):
    """What a job asks of its worker (ARCHITECTURE §7, §13)."""

    REPRODUCE = "reproduce"  # run the reference inputs R times; reproducibility/v1
    EVALUATE = "evaluate"  # predict a channel's dataset, measure it; evaluation/v1


class JobState(StrEnum):
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # leased to one worker until its lease expires
    ATTESTED = "attested"  # completed by the worker's accepted reproducibility statement
    FAILED = "failed"  # attempts exhausted, given up for good, or refused by the engine


MAX_ERROR_CHARS = 2048
"""A job's ``last_error`` as stored and shown, in characters (longer words are cut)."""
