"""Verification jobs: enqueue, claim with a lease, heartbeat, complete, fail.

Invariants:
- A job is held by at most one worker at a time: claiming locks the row (PostgreSQL
  ``FOR UPDATE SKIP LOCKED``; SQLite serialises writers) and sets a lease.
- A dead worker delays a job, never loses it: an expired lease makes the job
  claimable again. Attempts are bounded: a job whose lease expired on its last
  attempt, or that failed for good, ends ``failed`` with its last error.
- Only the lease holder may heartbeat, complete or fail a job. Completing posts the
  worker's signed statement through the attestation checks; nothing bypasses them.
- One worker (token) never holds two jobs of the same artifact, profile, task, channel
  and baseline, so ``min_workers`` means distinct workers.
- An ``evaluate`` job (ARCHITECTURE §13) measures its artifact on the dataset its
  channel's policy names; its rules (which jobs, what a claimed one measures, which
  statement completes it) are ``registry.domain.jobs.evaluations``.
- A failure is an engine's refusal to run deterministically only when the worker says
  so (``refused_nondeterministic``): final, and a finding. The row keeps the worker's
  words; users read them after ``NONDETERMINISTIC``, as before that was a column.
- Leases are granted and judged expired by the service's clock (``now``).
- A waiting claim (``claim_waiting``) holds no lock and no transaction while it
  waits: it claims at once when a job is claimable, is woken when this process
  queues one (``WorkSignal``) and otherwise reads the queue every
  ``CLAIM_POLL_SECONDS`` (jobs queued by other replicas, leases that expired).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import anyio.to_thread
from cachetools import LRUCache
from sqlalchemy.orm import Session, sessionmaker

from registry.core.clock import Clock, utc_now
from registry.core.digest import Digest
from registry.core.jobs import MAX_ERROR_CHARS, JobState, JobTask
from registry.core.manifest import ParsedManifest, parse_manifest
from registry.core.policy import Policy
from registry.core.predicates import ReproducibilityPredicate
from registry.core.profiles import PROFILE_ENGINES, runs
from registry.db.engine import after_commit
from registry.db.models import JobRow
from registry.domain.artifacts.schemas import StoredManifest
from registry.domain.artifacts.services import ArtifactService
from registry.domain.attestations.services import Accepted, AttestationService
from registry.domain.jobs.evaluations import EvaluationJobs, EvaluationPlanner
from registry.domain.jobs.repositories import JobRepository
from registry.domain.jobs.schemas import Job
from registry.domain.jobs.signal import WorkSignal
from registry.errors import (
    AttestationRejectedError,
    InvalidRequestError,
    JobLeaseError,
    JobNotFoundError,
)
from registry.metrics import Metrics

MAX_CLAIM_SCAN = 20
CLAIM_POLL_SECONDS = 1.0  # how often a waiting claim reads the queue between wake-ups
NONDETERMINISTIC = "nondeterministic: "  # shown before an engine refusal's error
FindingRecorder = Callable[[Session, StoredManifest, str, str, Mapping[str, str], str | None], None]
"""Records a nondeterminism finding in the caller's transaction (see channels.findings)."""


def _shown_error(row: JobRow) -> str | None:
    """``last_error`` as users read it: an engine refusal (``refused_nondeterministic``)
    is shown after ``NONDETERMINISTIC``, in at most ``MAX_ERROR_CHARS`` like any error."""
    if row.last_error is None or not row.refused_nondeterministic:
        return row.last_error
    return f"{NONDETERMINISTIC}{row.last_error}"


def _dto(row: JobRow) -> Job:
    return Job(
        id=row.id,
        artifact=f"blake3:{row.artifact_digest}",
        profile=row.profile,
        state=row.state,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        worker=row.worker_name,
        lease_expires_at=row.lease_expires_at,
        last_error=_shown_error(row),
        attestation_sha256=row.attestation_sha256,
        created_at=row.created_at,
        task=JobTask(row.task),
        channel=row.channel,
    )


def _new(
    digest_hex: str,
    profile: str,
    max_attempts: int,
    now: datetime,
    task: JobTask = JobTask.REPRODUCE,
    channel: str | None = None,
    baseline: str | None = None,
) -> JobRow:
    return JobRow(
        id=secrets.token_hex(16),
        artifact_digest=digest_hex,
        profile=profile,
        state=JobState.QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        worker_token=None,
        worker_name=None,
        lease_expires_at=None,
        last_error=None,
        refused_nondeterministic=False,
        attestation_sha256=None,
        created_at=now,
        updated_at=now,
        task=task.value,
        channel=channel,
        baseline=baseline,
    )


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


class JobService:
    def __init__(
        self,
        artifacts: ArtifactService,
        attestations: AttestationService,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        policy: Policy,
        metrics: Metrics,
        lease_seconds: float = 300.0,
        on_nondeterministic: FindingRecorder | None = None,
        max_attempts: int = 3,
        now: Clock = utc_now,
    ) -> None:
        self._artifacts = artifacts
        self._attestations = attestations
        self._writes = writes
        self._reads = reads
        self._policy = policy
        self._metrics = metrics
        self._on_nondeterministic = on_nondeterministic
        self._now = now  # leases are granted and judged expired by this clock
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        # leases this process granted or extended: job id -> (artifact digest, holder,
        # expiry). Completing a job whose lease is known to be live needs no read before
        # the write (the write transaction checks the lease again, authoritatively)
        self._leases: LRUCache[str, tuple[str, str, datetime]] = LRUCache(maxsize=10_000)
        self._leases_lock = threading.Lock()
        self.work = WorkSignal()  # jobs this process made claimable wake waiting claims
        self._evaluations = EvaluationJobs(policy)

    def plan_evaluations_with(self, planner: EvaluationPlanner) -> None:
        """Set what evaluate jobs measure (wired once at start, ``registry.app``); without
        a planner every evaluate job fails when claimed."""
        self._evaluations.planner = planner

    def required(self, parsed: ParsedManifest) -> dict[str, int]:
        """Reproduce jobs the policy needs for this artifact: profile -> workers (over all
        channels). Only models and reference inputs are reproduced, never datasets."""
        if parsed.manifest.kind == "dataset":
            return {}
        engine = (parsed.manifest.runtime or {}).get("engine")
        need: dict[str, int] = {}
        for rules in self._policy.channels.values():
            for r in rules.reproducibility:
                if runs(r.profile, engine if isinstance(engine, str) else None):
                    need[r.profile] = max(need.get(r.profile, 0), r.min_workers)
        return need

    def enqueue_required(self, session: Session, parsed: ParsedManifest) -> None:
        """Called in the push transaction: one job per worker the policy requires, and
        ``min_workers`` evaluate jobs per channel whose workers measure this model."""
        now = self._now()
        digest = parsed.digests.blake3.hex
        rows = [
            _new(digest, profile, self.max_attempts, now)
            for profile, count in self.required(parsed).items()
            for _ in range(count)
        ]
        for channel, e in self._evaluations.channels_for(parsed).items():
            baseline = self._evaluations.baseline(parsed.manifest.name, channel, digest)
            rows += [
                _new(
                    digest,
                    str(e.profile),
                    self.max_attempts,
                    now,
                    JobTask.EVALUATE,
                    channel,
                    baseline,
                )
                for _ in range(e.min_workers)
            ]
        session.add_all(rows)
        if rows:
            after_commit(session, self.work.notify)

    def request(
        self,
        ref: Digest,
        profile: str,
        count: int,
        task: JobTask = JobTask.REPRODUCE,
        channel: str | None = None,
    ) -> list[Job]:
        """More verification of ``ref`` by ``count`` workers of ``profile``: reproduce its
        reference inputs, or (``evaluate``) measure it on ``channel``'s dataset.

        Raises:
            InvalidRequestError: unknown profile, count out of range, a channel with a
                reproduce task, or an evaluate task the channel's policy does not ask for.
            ArtifactNotFoundError.
        """
        if profile not in PROFILE_ENGINES:
            raise InvalidRequestError(
                f"unknown profile {profile!r}; known: {sorted(PROFILE_ENGINES)}"
            )
        if not 1 <= count <= 16:
            raise InvalidRequestError("count must be 1..16")
        if task == JobTask.REPRODUCE and channel is not None:
            raise InvalidRequestError("a reproduce job serves every channel: name no channel")
        if task == JobTask.EVALUATE and (why := self._evaluations.problem(profile, channel)):
            raise InvalidRequestError(why)
        stored = self._artifacts.manifest(ref)
        baseline = None
        if task == JobTask.EVALUATE and channel is not None:
            parsed = parse_manifest(stored.raw)
            if channel not in self._evaluations.channels_for(parsed):
                engine = (parsed.manifest.runtime or {}).get("engine")
                raise InvalidRequestError(
                    f"{stored.name}@{stored.version} is a {parsed.manifest.kind} artifact with "
                    f"engine {engine!r}: {profile} workers cannot measure it on {channel!r}'s "
                    "dataset (only models whose engine the profile runs are measured)"
                )
            baseline = self._evaluations.baseline(stored.name, channel, stored.digest.hex)
            self._evaluations.check_needed(stored, channel, baseline)
        now = self._now()
        rows = [
            _new(stored.digest.hex, profile, self.max_attempts, now, task, channel, baseline)
            for _ in range(count)
        ]
        with self._writes.begin() as session:
            session.add_all(rows)
        self.work.notify()
        return [_dto(r) for r in rows]

    def claim(self, profiles: list[str], token_id: str, worker: str) -> Job | None:
        """Lease the oldest claimable job of ``profiles``; None when there is none."""
        unknown = [p for p in profiles if p not in PROFILE_ENGINES]
        if not profiles or unknown:
            raise InvalidRequestError(f"profiles must be among {sorted(PROFILE_ENGINES)}")
        now = self._now()
        with self._writes.begin() as session:
            repo = JobRepository(session)
            for _ in range(MAX_CLAIM_SCAN):
                row = repo.next_claimable(profiles, token_id, now)
                if row is None:
                    return None
                if row.attempts >= row.max_attempts:  # its last lease expired
                    note = " [lease expired on the last attempt]"
                    self._fail_unleased(session, row, (row.last_error or ""), note, now)
                    continue
                task = self._evaluations.task(row)
                if isinstance(task, str):  # fail closed: never lease what cannot be measured
                    self._fail_unleased(session, row, task, "", now)
                    continue
                row.state, row.attempts, row.updated_at = JobState.RUNNING, row.attempts + 1, now
                row.worker_token, row.worker_name = token_id, worker[:128] or None
                row.lease_expires_at = now + timedelta(seconds=self.lease_seconds)
                session.flush()
                claimed = _dto(row)
                claimed.evaluation = task
                break
            else:
                return None
        self._remember_lease(row)
        return claimed

    def _fail_unleased(
        self, session: Session, row: JobRow, error: str, note: str, now: datetime
    ) -> None:
        """End a job that is not leased as ``failed`` with ``error`` (and ``note``)."""
        row.state, row.updated_at = JobState.FAILED, now
        after_commit(session, self._metrics.jobs_failed.labels(profile=row.profile).inc)
        row.last_error = error[: MAX_ERROR_CHARS - len(note)] + note
        row.worker_token = row.lease_expires_at = None
        session.flush()

    async def claim_waiting(
        self,
        profiles: list[str],
        token_id: str,
        worker: str,
        wait_seconds: float,
        gone: asyncio.Event | None = None,
    ) -> Job | None:
        """``claim``, waiting up to ``wait_seconds`` for a claimable job (long poll); None
        when none came in time or ``gone`` was set (the client hung up).

        Raises:
            InvalidRequestError: see ``claim`` (before any waiting).
        """
        deadline = time.monotonic() + wait_seconds
        gone = gone or asyncio.Event()
        wake = asyncio.Event()  # set by a notify, or when the client goes
        stop_waking = asyncio.create_task(_relay(gone, wake))
        try:
            since = self.work.generation
            job = await anyio.to_thread.run_sync(self.claim, profiles, token_id, worker)
            while job is None:
                wake.clear()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or gone.is_set():
                    return None
                notified = await self.work.wait(since, min(CLAIM_POLL_SECONDS, remaining), wake)
                since = self.work.generation
                if gone.is_set():
                    return None
                if notified or await anyio.to_thread.run_sync(
                    self.any_claimable, profiles, token_id
                ):
                    job = await anyio.to_thread.run_sync(self.claim, profiles, token_id, worker)
            return job
        finally:
            stop_waking.cancel()

    def any_claimable(self, profiles: list[str], token_id: str) -> bool:
        """Whether a claim by this worker would find a job now (a read; locks nothing)."""
        with self._reads() as session:
            return JobRepository(session).any_claimable(profiles, token_id, self._now())

    def _remember_lease(self, row: JobRow) -> None:
        if row.worker_token is not None and row.lease_expires_at is not None:
            with self._leases_lock:
                self._leases[row.id] = (row.artifact_digest, row.worker_token, row.lease_expires_at)

    def _forget_lease(self, job_id: str) -> None:
        with self._leases_lock:
            self._leases.pop(job_id, None)

    def _live_lease(self, job_id: str, token_id: str) -> str | None:
        """The job's artifact if this process knows ``token_id`` holds a live lease on it."""
        with self._leases_lock:
            known = self._leases.get(job_id)
        if known is None or known[1] != token_id or known[2] <= self._now():
            return None
        return known[0]

    def _held(self, session: Session, job_id: str, token_id: str, now: datetime) -> JobRow:
        """The job, locked, if ``token_id`` holds its lease (else JobLeaseError)."""
        return self._check_lease(
            JobRepository(session).get(job_id, lock=True), job_id, token_id, now
        )

    @staticmethod
    def _check_lease(row: JobRow | None, job_id: str, token_id: str, now: datetime) -> JobRow:
        if row is None:
            raise JobNotFoundError(f"no job {job_id}", job_id=job_id)
        expires = row.lease_expires_at
        if (
            row.state != JobState.RUNNING
            or row.worker_token != token_id
            or expires is None
            or expires <= now
        ):
            raise JobLeaseError(
                f"job {job_id} is {row.state} and its lease is not yours (expired or never "
                "held): stop working on it and claim again",
                state=row.state,
            )
        return row

    def heartbeat(self, job_id: str, token_id: str) -> Job:
        now = self._now()
        with self._writes.begin() as session:
            row = self._held(session, job_id, token_id, now)
            row.lease_expires_at, row.updated_at = now + timedelta(seconds=self.lease_seconds), now
            beat = _dto(row)
        self._remember_lease(row)
        return beat

    def complete(self, job_id: str, token_id: str, envelope: bytes) -> Job:
        """Attach the worker's signed statement (checked like any attestation) and finish.

        The job turns ``attested`` in the transaction that accepts the statement: both
        happen, or neither. Sending the same statement again for the job it completed
        (a retry after a lost answer) answers the attested job.
        """
        artifact_hex = self._live_lease(job_id, token_id)
        if artifact_hex is None:  # not known here as live: ask the database
            row = self._lease_or_done(job_id, token_id, envelope)
            if row.state == JobState.ATTESTED:
                return _dto(row)
            artifact_hex = row.artifact_digest
        finished: list[tuple[Job, float]] = []

        def finish(session: Session, accepted: Accepted) -> None:
            now = self._now()
            job = self._held(session, job_id, token_id, now)  # still ours, now locked
            assert job.artifact_digest == accepted.stored.digest.hex  # a job's artifact is fixed
            self._check_evidence(job, accepted)
            job.state, job.updated_at = JobState.ATTESTED, now
            job.attestation_sha256 = accepted.row.envelope_sha256
            job.lease_expires_at = None
            finished.append((_dto(job), (now - job.created_at).total_seconds()))

        _, created = self._attestations.post(
            Digest.blake3(artifact_hex), envelope, token_id, also=finish
        )
        if not created:
            row = self._lease_or_done(job_id, token_id, envelope)
            if row.state == JobState.ATTESTED:
                return _dto(row)
            raise AttestationRejectedError(
                "this statement was accepted before, for another job: sign this job's own"
            )
        job, waited = finished[0]
        self._forget_lease(job_id)
        self._metrics.verification_seconds.labels(profile=job.profile).observe(waited)
        return job

    def _lease_or_done(self, job_id: str, token_id: str, envelope: bytes) -> JobRow:
        """The job, read once, if ``token_id`` holds its lease (``running``) or already
        completed it with exactly this envelope (``attested``: a retry after a lost
        answer). Raises JobNotFoundError, JobLeaseError: refused before signature work."""
        with self._reads() as session:
            row = JobRepository(session).get(job_id)
        if (
            row is not None
            and row.state == JobState.ATTESTED
            and row.worker_token == token_id
            and row.attestation_sha256 == hashlib.sha256(envelope).hexdigest()
        ):
            return row
        return self._check_lease(row, job_id, token_id, self._now())

    def _check_evidence(self, job: JobRow, accepted: Accepted) -> None:
        """A job is completed only by new evidence: this job's profile, from a key that has
        not attested this artifact for that profile before (the gate counts keys)."""
        predicate, attestation = accepted.statement.predicate, accepted.row
        if job.task == JobTask.EVALUATE:
            self._evaluations.check_measurement(job, accepted)
            return
        if not isinstance(predicate, ReproducibilityPredicate):
            raise AttestationRejectedError(
                "a reproduce job is completed with a reproducibility/v1 statement"
            )
        if predicate.profile != job.profile or predicate.job not in (None, job.id):
            raise AttestationRejectedError(
                f"the statement is about profile {predicate.profile!r}, job "
                f"{predicate.job!r}; this is job {job.id} of {job.profile}"
            )
        for keyid, other in accepted.earlier:
            if keyid == attestation.keyid and other.profile == job.profile:
                raise AttestationRejectedError(
                    f"key {attestation.keyid[:16]}… already attested this artifact for "
                    f"{job.profile}; another worker key must take this job"
                )

    def fail(
        self, job_id: str, token_id: str, error: str, retry: bool, nondeterministic: bool = False
    ) -> Job:
        """Give the job up: back to the queue while attempts remain and ``retry``.

        A ``nondeterministic`` failure (the engine refused an op it cannot run
        deterministically) is final and counted as a nondeterminism finding.
        """
        if not error.strip():
            raise InvalidRequestError("say why the job failed")
        now = self._now()
        with self._writes.begin() as session:
            row = self._held(session, job_id, token_id, now)
            if nondeterministic:
                stored = self._artifacts.manifest(Digest.blake3(row.artifact_digest))
                if self._on_nondeterministic is not None:  # logged, in history, counted
                    finding = f"{NONDETERMINISTIC}{error}"
                    self._on_nondeterministic(session, stored, row.profile, finding, {}, token_id)
            row.refused_nondeterministic = nondeterministic
            shown_at_most = MAX_ERROR_CHARS - (len(NONDETERMINISTIC) if nondeterministic else 0)
            row.last_error, row.updated_at = error[:shown_at_most], now
            row.lease_expires_at = None
            if retry and not nondeterministic and row.attempts < row.max_attempts:
                row.state, row.worker_token, row.worker_name = JobState.QUEUED, None, None
                after_commit(session, self.work.notify)
            else:
                row.state = JobState.FAILED
                after_commit(session, self._metrics.jobs_failed.labels(profile=row.profile).inc)
            failed = _dto(row)
        self._forget_lease(job_id)
        return failed

    def refusals(self, ref: Digest) -> dict[str, list[str]]:
        """Per profile, why engines refused to reproduce ``ref`` deterministically (final)."""
        out: dict[str, list[str]] = {}
        for row in self._rows_of(ref):
            if (
                row.task == JobTask.REPRODUCE
                and row.state == JobState.FAILED
                and row.refused_nondeterministic
            ):
                out.setdefault(row.profile, []).append(str(_shown_error(row)))
        return out

    def evaluation_refusals(self, ref: Digest, channel: str) -> list[str]:
        """Why evaluate jobs of ``ref`` for ``channel`` failed for good, oldest first."""
        return [
            str(_shown_error(row) or "no reason given")
            for row in self._rows_of(ref)
            if row.task == JobTask.EVALUATE
            and row.channel == channel
            and row.state == JobState.FAILED
        ]

    def of_artifact(self, ref: Digest) -> list[Job]:
        return [_dto(r) for r in self._rows_of(ref)]

    def _rows_of(self, ref: Digest) -> list[JobRow]:
        stored = self._artifacts.manifest(ref)
        with self._reads() as session:
            return JobRepository(session).of_artifact(stored.digest.hex)
