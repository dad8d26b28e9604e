"""Channel DTOs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Promote(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    channel: str
    digest: str
    reason: str


class Rollback(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    channel: str
    reason: str
    digest: str | None = None  # default: the digest the channel held before the current one


class ChannelEvent(msgspec.Struct):
    log_index: int
    name: str
    channel: str
    action: str
    from_digest: str | None
    to_digest: str
    reason: str
    by: str | None  # the token id that did it
    actor: str | None  # that token's description when it acted
    keyid: str | None  # the signing key whose statement caused it (findings)
    at: datetime


class ChannelPointer(msgspec.Struct):
    name: str
    channel: str
    digest: str
    updated_at: datetime
    log_index: int


class ProfileState(msgspec.Struct):
    """Verification of one profile: none / queued / running / attested / disagree / failed."""

    profile: str
    state: str
    agreeing_workers: int
    output: str | None  # the digest every worker agreed on
    finding: str | None  # why it is non-reproducible, with the differing digests
    workers: list[dict[str, Any]]  # {keyid, output, agree} per accepted attestation
    queued: int
    running: list[str]  # worker names holding a lease
    failed: list[str]  # last errors of jobs that ended failed


class ChannelStatus(msgspec.Struct):
    digest: str
    channel: str
    policy_version: str
    promotable: bool
    requirements: list[dict[str, Any]]
    verification: list[ProfileState]


class HistoryPage(msgspec.Struct):
    events: list[ChannelEvent]
    next_cursor: str | None
