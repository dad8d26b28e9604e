"""Job DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from registry.core.jobs import JobState, JobTask

MAX_CLAIM_WAIT_SECONDS = 30.0


class Claim(msgspec.Struct, forbid_unknown_fields=True):
    profiles: list[str]
    worker: str = ""
    # long poll: hold the claim up to this long until a job is claimable (0: answer at once)
    wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=MAX_CLAIM_WAIT_SECONDS)] = 0.0


class Failure(msgspec.Struct, forbid_unknown_fields=True):
    error: str
    retry: bool = True
    nondeterministic: bool = False  # the engine refused an op it cannot run deterministically


class VerifyRequest(msgspec.Struct, forbid_unknown_fields=True):
    profile: str
    count: int = 1
    task: JobTask = JobTask.REPRODUCE
    channel: str | None = None  # evaluate: whose policy names the dataset and thresholds


class EvaluationTask(msgspec.Struct):
    """What an ``evaluate`` job measures, as the channel's policy says when it is claimed."""

    dataset: str  # blake3 digest of the dataset artifact (the policy's NAME@VERSION)
    dataset_ref: str  # NAME@VERSION as the policy names it
    min_samples: int
    thresholds: dict[str, str]  # metric -> rule, recorded in the statement
    baseline: str | None = None  # the artifact the channel holds now: measure drift from it
    baseline_predictions: str | None = None  # its agreed predictions digest here, if measured
    tolerance: float | None = None  # drift: a sample moved when a value changed by more


class Job(msgspec.Struct):
    id: str
    artifact: str
    profile: str
    state: JobState
    attempts: int
    max_attempts: int
    worker: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    attestation_sha256: str | None
    created_at: datetime
    task: JobTask = JobTask.REPRODUCE
    channel: str | None = None  # evaluate: whose policy
    evaluation: EvaluationTask | None = None  # evaluate, when claimed: what to measure
