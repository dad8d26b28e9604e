"""Reproducibility findings: verdicts per profile over the counted ``reproducibility/v1``
statements, where reproducing each profile stands, and nondeterminism findings recorded
the moment they appear.

Invariants:
- A finding (a worker whose runs disagree, a worker whose output differs from an
  earlier worker's for the same profile, or a worker key's first measurement whose
  predictions differ from an earlier worker's on the same dataset and profile) is
  recorded in the transaction that accepts
  the attestation: a ``verification.nondeterministic`` log entry naming the differing
  digests, a ``nondeterministic`` event in the artifact's channel history, and
  ``reliquary_nondeterministic_total{profile}``. Findings are never withdrawn.
- Verdicts count only attestations whose key is still trusted (``Evidence``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from registry.core.evaluation import judge as judge_measurements
from registry.core.predicates import EvaluationPredicate, ReproducibilityPredicate
from registry.core.reproducibility import ProfileVerdict, WorkerResult, judge
from registry.db.engine import after_commit
from registry.db.models import ChannelEventRow
from registry.domain.artifacts.schemas import StoredManifest
from registry.domain.attestations.services import Accepted
from registry.domain.channels.schemas import ProfileState
from registry.domain.jobs.schemas import Job
from registry.domain.log.services import TransparencyLog
from registry.metrics import Metrics

ALL_CHANNELS = "*"  # a finding blocks the artifact in every channel


def verdicts(
    results: Iterable[tuple[str, ReproducibilityPredicate]],
    refusals: Mapping[str, list[str]] | None = None,
) -> dict[str, ProfileVerdict]:
    """(signing keyid, reproducibility predicate) pairs, and the engines' refusals to run
    deterministically (by profile) -> a verdict per profile."""
    by_profile: dict[str, list[WorkerResult]] = {}
    for keyid, predicate in results:
        by_profile.setdefault(predicate.profile, []).append(WorkerResult.of(keyid, predicate))
    refusals = refusals or {}
    return {
        profile: judge(profile, by_profile.get(profile, []), refusals.get(profile, []))
        for profile in dict.fromkeys([*by_profile, *refusals])
    }


class NondeterminismRecorder:
    """An attestation accept hook: records a finding as soon as an attestation makes one."""

    def __init__(self, log: TransparencyLog, metrics: Metrics) -> None:
        self._log = log
        self._metrics = metrics

    def __call__(self, session: Session, accepted: Accepted) -> None:
        predicate, row = accepted.statement.predicate, accepted.row
        if isinstance(predicate, EvaluationPredicate):
            self._measured(session, accepted, predicate)
            return
        if not isinstance(predicate, ReproducibilityPredicate):
            return
        profile = predicate.profile
        new = WorkerResult.of(row.keyid, predicate)
        earlier = [
            WorkerResult.of(keyid, p) for keyid, p in accepted.earlier if p.profile == profile
        ]
        if new.agree and all(e.output == new.output for e in earlier):
            return
        verdict = judge(profile, [*earlier, new])
        self.record(
            session,
            accepted.stored,
            profile,
            verdict.finding or "",
            verdict.outputs,
            row.token_id,
            row.keyid,
        )

    def _measured(
        self, session: Session, accepted: Accepted, predicate: EvaluationPredicate
    ) -> None:
        """A worker key's first measurement on a dataset against a baseline that disagrees
        with the earlier ones there (predictions, or the predictions of the baseline they
        compared)."""
        if not (accepted.by_worker and predicate.measured):
            return
        row, profile, dataset = accepted.row, str(predicate.profile), str(predicate.dataset)
        earlier = [
            (k, p)
            for k, p in accepted.earlier_measured
            if p.profile == profile and str(p.dataset) == dataset
        ]
        baseline = None if predicate.drift is None else str(predicate.drift.against)
        if not earlier or any(
            k == row.keyid and (None if p.drift is None else str(p.drift.against)) == baseline
            for k, p in earlier
        ):
            return  # the first measurement there, or one not counted (same key, baseline)
        after = judge_measurements(profile, dataset, [*earlier, (row.keyid, predicate)])
        [new] = [m for m in after.measurements if m.keyid == row.keyid and m.baseline == baseline]
        differs = any(
            m.predictions != new.predictions
            or (
                new.baseline is not None
                and m.baseline == new.baseline
                and m.baseline_predictions != new.baseline_predictions
            )
            for m in after.measurements
            if m is not new
        )
        if after.finding is None or not differs:
            return
        outputs = {m.keyid: m.predictions for m in after.measurements}
        finding = f"evaluation on {dataset}: {after.finding}"
        self.record(session, accepted.stored, profile, finding, outputs, row.token_id, row.keyid)

    def record(
        self,
        session: Session,
        stored: StoredManifest,
        profile: str,
        finding: str,
        outputs: Mapping[str, str],
        token_id: str | None,
        keyid: str | None = None,
    ) -> None:
        """Log a finding, put it in the artifact's history and count it (one transaction)."""
        index = self._log.append(
            session,
            "verification.nondeterministic",
            {
                "artifact": str(stored.digest),
                "name": stored.name,
                "version": stored.version,
                "profile": profile,
                "finding": finding,
                "outputs": dict(outputs),
            },
        )
        session.add(
            ChannelEventRow(
                log_index=index,
                name=stored.name,
                channel=ALL_CHANNELS,
                action="nondeterministic",
                from_digest=None,
                to_digest=stored.digest.hex,
                reason=f"non-reproducible on {profile}: {finding}"[:1024],
                token_id=token_id,
                created_at=datetime.now(UTC),
                keyid=keyid,
            )
        )
        counter = self._metrics.nondeterministic.labels(profile=profile)
        after_commit(session, counter.inc)


def profile_states(
    profiles: Iterable[str], judged: Mapping[str, ProfileVerdict], jobs: list[Job]
) -> list[ProfileState]:
    """Where reproducing each profile stands, for people: one row per profile (jobs
    queued, running, failed; workers' results; the finding)."""
    names = dict.fromkeys([*profiles, *judged, *(j.profile for j in jobs)])
    out = []
    for profile in names:
        verdict = judged.get(profile, ProfileVerdict(profile))
        mine = [j for j in jobs if j.profile == profile]
        running = [j.worker or "?" for j in mine if j.state == "running"]
        queued = sum(j.state == "queued" for j in mine)
        failed = [j.last_error or "no reason given" for j in mine if j.state == "failed"]
        if verdict.finding is not None:
            state = "disagree"
        elif verdict.results:
            state = "attested"
        elif running:
            state = "running"
        elif queued:
            state = "queued"
        elif failed:
            state = "failed"
        else:
            state = "none"
        out.append(
            ProfileState(
                profile=profile,
                state=state,
                agreeing_workers=verdict.agreeing_workers,
                output=verdict.output,
                finding=verdict.finding,
                workers=[
                    {"keyid": r.keyid, "output": r.output, "agree": r.agree}
                    for r in verdict.results
                ],
                queued=queued,
                running=running,
                failed=failed,
            )
        )
    return out
