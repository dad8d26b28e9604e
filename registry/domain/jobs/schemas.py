"""Job DTOs."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Claim(msgspec.Struct, forbid_unknown_fields=True):
    profiles: list[str]
    worker: str = ""


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
    state: str
    attempts: int
    max_attempts: int
    worker: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    attestation_sha256: str | None
    created_at: datetime
