"""Job DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from registry.core.jobs import JobState

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
