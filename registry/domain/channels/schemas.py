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


class MetricState(msgspec.Struct):
    value: float | None  # as measured (None: not measured yet)
    rule: str | None  # the policy's threshold (None: measured, not gated)
    met: bool | None  # None: no rule


class DriftState(msgspec.Struct):
    """How far the agreed predictions moved from the channel holder's, and the bounds."""

    against: str | None  # the holder the workers compared with (None: not measured yet)
    mean_abs_diff: float | None
    max_abs_diff: float | None
    moved: float | None  # share of samples that moved by more than tolerance
    tolerance: float | None
    bounds: dict[str, float]  # the policy's: tolerance, max_moved, max_mean_abs_diff, …
    met: bool


class EvaluationState(msgspec.Struct):
    """The channel's evaluation of this artifact: who measures, on what, and where it
    stands (state none / queued / running / measured / disagree / failed)."""

    source: str  # worker, publisher, publisher-or-manifest
    dataset: str | None  # NAME@VERSION the policy names (source worker)
    digest: str | None  # what it resolves to here (None: not pushed)
    samples: int | None  # the dataset's sample count
    min_samples: int
    profile: str | None
    min_workers: int
    state: str
    # {keyid, predictions, samples, metrics, compared_with} per worker key and baseline
    workers: list[dict[str, Any]]
    metrics: dict[str, MetricState]
    changes: dict[str, float]  # measured minus the channel holder's, per metric
    drift: DriftState | None  # None: the policy bounds no drift, or the channel holds nothing
    finding: str | None  # why the workers' measurements cannot count
    failed: list[str]  # why evaluate jobs failed for good
    queued: int = 0
    running: list[str] = []


class ChannelStatus(msgspec.Struct):
    digest: str
    channel: str
    policy_version: str
    promotable: bool
    requirements: list[dict[str, Any]]
    verification: list[ProfileState]
    evaluation: EvaluationState | None = None  # None: the channel's policy measures nothing


class HistoryPage(msgspec.Struct):
    events: list[ChannelEvent]
    next_cursor: str | None
