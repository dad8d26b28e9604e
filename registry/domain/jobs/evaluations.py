"""Evaluate jobs (ARCHITECTURE §13): which channels measure a model, what a job made now
compares with, what a claimed job measures, and which statement completes one.

Invariants:
- A model gets ``min_workers`` evaluate jobs per channel whose policy has workers of a
  profile that runs its engine measure it; a job compares with what the channel held
  when it was made (``jobs.baseline``), never with the model itself.
- A job is planned when claimed (``EvaluationPlanner``, implemented by the channels
  context: this one never imports it); one that cannot be measured is never leased.
- A job is completed only by a measured ``evaluation/v1`` of a worker key, of the job's
  profile, job, channel, dataset (resolved when it completes) and baseline, and only by
  that key's first measurement of the artifact against that baseline.
- A request for more measurements is refused while ``min_workers`` workers already
  measured the model against what the channel holds now (nobody could take the jobs).
"""

from __future__ import annotations

from typing import Protocol

from registry.core.digest import Digest
from registry.core.evaluation_rules import Evaluation
from registry.core.jobs import JobTask
from registry.core.manifest import ParsedManifest
from registry.core.policy import Policy
from registry.core.predicates import EvaluationPredicate
from registry.core.profiles import runs
from registry.db.models import JobRow
from registry.domain.artifacts.schemas import StoredManifest
from registry.domain.attestations.services import Accepted
from registry.domain.jobs.schemas import EvaluationTask
from registry.errors import AttestationRejectedError, InvalidRequestError, LogIntegrityError


class EvaluationPlanner(Protocol):
    """What an evaluate job measures, from the policy in force (the channels context
    implements it; this context never imports that one)."""

    def plan(self, artifact: Digest, channel: str, baseline: Digest | None) -> EvaluationTask | str:
        """The task for an evaluate job of ``artifact`` for ``channel`` that compares with
        ``baseline``, or why there is none now (the dataset is not pushed, not a dataset,
        revoked): what to do next."""
        ...

    def holder(self, name: str, channel: str) -> Digest | None:
        """What ``name:channel`` holds now (proven against the log), if anything."""
        ...

    def measured(self, artifact: Digest, channel: str, baseline: Digest | None) -> int:
        """How many worker keys measured ``artifact`` for ``channel`` against ``baseline``."""
        ...

    def dataset(self, channel: str) -> str | None:
        """The digest of the dataset ``channel``'s policy names, if it resolves now."""
        ...


class EvaluationJobs:
    """The evaluate-job rules of ``policy``; ``planner`` plans claimed jobs."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self.planner: EvaluationPlanner | None = None

    def channels_for(self, parsed: ParsedManifest) -> dict[str, Evaluation]:
        """Channel -> its measured evaluation, for each channel whose workers' profile
        runs this model's engine (a model only: the channel measures it on its dataset)."""
        if parsed.manifest.kind != "model":
            return {}
        engine = (parsed.manifest.runtime or {}).get("engine")
        out = {}
        for channel, rules in sorted(self._policy.channels.items()):
            evaluation = rules.evaluation
            if (
                evaluation is not None
                and evaluation.measured
                and runs(str(evaluation.profile), engine if isinstance(engine, str) else None)
            ):
                out[channel] = evaluation
        return out

    def baseline(self, name: str, channel: str, digest_hex: str) -> str | None:
        """What an evaluate job made now compares with: the artifact ``name:channel``
        holds (hex), unless that is the job's own artifact or the channel holds nothing.
        A channel whose pointer disagrees with the log gives none (its status refuses)."""
        if self.planner is None:
            return None
        try:
            held = self.planner.holder(name, channel)
        except LogIntegrityError:
            return None
        return None if held is None or held.hex == digest_hex else held.hex

    def check_needed(self, stored: StoredManifest, channel: str, baseline: str | None) -> None:
        """Refuse to queue evaluate jobs nobody may take: the policy's ``min_workers``
        already measured this artifact against this baseline, and each worker key
        measures an artifact once per baseline."""
        evaluation = self._policy.for_channel(channel).evaluation
        if self.planner is None or evaluation is None:
            return
        against = None if baseline is None else Digest.blake3(baseline)
        done = self.planner.measured(stored.digest, channel, against)
        if done >= evaluation.min_workers:
            compared = "nothing" if against is None else str(against)
            raise InvalidRequestError(
                f"{done} workers already measured {stored.name}@{stored.version} for "
                f"{channel!r}, comparing with {compared} (what the channel holds now): "
                "there is nothing new to measure until the channel holds another artifact; "
                "a worker measures an artifact once per artifact it compares with"
            )

    def problem(self, profile: str, channel: str | None) -> str | None:
        """Why evaluate jobs of ``profile`` cannot serve ``channel`` (None: they can)."""
        if channel is None:
            return "an evaluate request names the channel whose policy names the dataset"
        evaluation = self._policy.for_channel(channel).evaluation
        if evaluation is None or not evaluation.measured:
            return (
                f"channel {channel!r}'s policy has no evaluation measured by workers "
                '(evaluation = { source = "worker", dataset = …, profile = … })'
            )
        if evaluation.profile != profile:
            return (
                f"channel {channel!r}'s workers measure with profile {evaluation.profile!r}, "
                f"not {profile!r}"
            )
        return None

    def task(self, row: JobRow) -> EvaluationTask | str | None:
        """What an evaluate job measures now, or why it cannot be measured; None for a
        reproduce job."""
        if row.task != JobTask.EVALUATE:
            return None
        why = self.problem(row.profile, row.channel)
        if why is not None:
            return f"{why} (any more): nothing to measure"
        if self.planner is None or row.channel is None:
            return "this registry does not plan evaluations"
        baseline = None if row.baseline is None else Digest.blake3(row.baseline)
        try:
            return self.planner.plan(Digest.blake3(row.artifact_digest), row.channel, baseline)
        except LogIntegrityError as exc:  # fail this job, never every claim of the profile
            return f"cannot plan the measurement: {exc.detail}"

    def check_measurement(self, job: JobRow, accepted: Accepted) -> None:
        """An evaluate job is completed by a worker key's measured evaluation/v1 of this
        job's profile, channel and dataset (resolved now), that key's first measurement
        of this artifact on that dataset for that profile."""
        predicate, keyid = accepted.statement.predicate, accepted.row.keyid
        if not isinstance(predicate, EvaluationPredicate) or not predicate.measured:
            raise AttestationRejectedError(
                "an evaluate job is completed with a measured evaluation/v1 statement "
                "(profile, samples, predictions, worker, dataset)"
            )
        if not accepted.by_worker:
            raise AttestationRejectedError(
                f"key {keyid[:16]}… is not a worker key: only workers measure for a channel"
            )
        dataset = None if self.planner is None else self.planner.dataset(job.channel or "")
        if (
            predicate.profile != job.profile
            or predicate.job not in (None, job.id)
            or predicate.channel != job.channel
            or dataset is None
            or str(predicate.dataset) != dataset
        ):
            raise AttestationRejectedError(
                f"the statement measures profile {predicate.profile!r}, job {predicate.job!r}, "
                f"channel {predicate.channel!r}, dataset {predicate.dataset}; this is job "
                f"{job.id} of {job.profile} for channel {job.channel!r}, whose dataset is "
                f"{dataset or 'not in this registry'}"
            )
        against = None if predicate.drift is None else str(predicate.drift.against)
        planned = None if job.baseline is None else f"blake3:{job.baseline}"
        if against != planned:
            raise AttestationRejectedError(
                f"the statement compares with {against or 'nothing'}; job {job.id} compares "
                f"with {planned or 'nothing'} (what the channel held when it was made)"
            )
        for other, earlier in accepted.earlier_measured:
            earlier_against = None if earlier.drift is None else str(earlier.drift.against)
            if (
                other == keyid
                and earlier.profile == job.profile
                and str(earlier.dataset) == dataset
                and earlier_against == against
            ):
                raise AttestationRejectedError(
                    f"key {keyid[:16]}… already measured this artifact on {dataset} for "
                    f"{job.profile}, compared with {against or 'nothing'}; another worker "
                    "key must take this job"
                )
