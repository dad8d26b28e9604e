"""Where a channel's evaluation of one artifact stands, for people (``ChannelStatus.
evaluation``): built from the same facts and requirements the gate judges, so status and
promote never disagree about what is met.
"""

from __future__ import annotations

from registry.core.evaluation import Measurement, metric_changes
from registry.core.evaluation_rules import Evaluation
from registry.core.jobs import JobState, JobTask
from registry.core.policy import (
    ChannelPolicy,
    Facts,
    Requirement,
    against_current,
    current_metrics,
)
from registry.domain.channels.schemas import DriftState, EvaluationState, MetricState
from registry.domain.jobs.schemas import Job


def _state(facts: Facts, rules: Evaluation, jobs: list[Job]) -> tuple[str, int, list[str]]:
    """(state, jobs queued, workers running) of the evaluation."""
    verdict = facts.evaluation
    queued = sum(j.state == JobState.QUEUED for j in jobs)
    running = [j.worker or "?" for j in jobs if j.state == JobState.RUNNING]
    failed = any(j.state == JobState.FAILED for j in jobs)
    if verdict is not None and verdict.finding is not None:
        return "disagree", queued, running
    if verdict is not None and verdict.agreeing_workers >= rules.min_workers:
        return "measured", queued, running
    if running:
        return "running", queued, running
    if queued:
        return "queued", queued, running
    if failed:
        return "failed", queued, running
    if verdict is not None and verdict.measurements:
        return "measured", queued, running
    return "none", queued, running


def _publisher(rules: Evaluation, met: dict[str, bool], facts: Facts) -> EvaluationState:
    measured = facts.attested_metrics
    if measured is None and rules.source == "publisher-or-manifest":
        measured = dict(facts.manifest_metrics) or None
    return EvaluationState(
        source=rules.source,
        dataset=None,
        digest=None,
        samples=None,
        min_samples=rules.min_samples,
        profile=None,
        min_workers=0,
        state="none" if measured is None else "measured",
        workers=[],
        metrics={
            t.metric: MetricState(
                None if measured is None else measured.get(t.metric),
                t.rule,
                met.get(f"evaluation.{t.metric}", False),
            )
            for t in rules.thresholds
        },
        changes=metric_changes(measured or {}, facts.current_metrics),
        drift=None,
        finding=None,
        failed=[],
    )


def evaluation_state(
    rules: ChannelPolicy, facts: Facts, requirements: list[Requirement], jobs: list[Job]
) -> EvaluationState | None:
    """The evaluation of ``facts``' artifact under ``rules`` (None: the channel's policy
    has none); ``requirements``: what ``evaluate`` answered for them; ``jobs``: the
    artifact's evaluate jobs for this channel."""
    evaluation = rules.evaluation
    if evaluation is None:
        return None
    met = {r.name: r.met for r in requirements}
    if not evaluation.measured:
        return _publisher(evaluation, met, facts)
    jobs = [j for j in jobs if j.task == JobTask.EVALUATE]
    verdict, dataset = facts.evaluation, facts.dataset
    agreed = None if verdict is None else verdict.agreed
    state, queued, running = _state(facts, evaluation, jobs)
    metrics = {
        t.metric: MetricState(
            None if agreed is None else agreed.metrics.get(t.metric),
            t.rule,
            met.get(f"evaluation.{t.metric}", False),
        )
        for t in evaluation.thresholds
    }
    for name, value in sorted((agreed.metrics if agreed else {}).items()):
        metrics.setdefault(name, MetricState(value, None, None))
    compared = None if verdict is None else against_current(verdict, facts.current)
    baseline = current_metrics(rules, facts)  # what max_regression compares with
    return EvaluationState(
        source=evaluation.source,
        dataset=str(evaluation.dataset),
        digest=None if dataset is None else dataset.digest,
        samples=None if dataset is None else dataset.samples,
        min_samples=evaluation.min_samples,
        profile=evaluation.profile,
        min_workers=evaluation.min_workers,
        state=state,
        workers=[
            {
                "keyid": m.keyid,
                "predictions": m.predictions,
                "samples": m.samples,
                "metrics": dict(m.metrics),
                "compared_with": m.baseline,
            }
            for m in (verdict.measurements if verdict else ())
        ],
        metrics=metrics,
        changes={} if agreed is None else metric_changes(agreed.metrics, baseline),
        drift=_drift(evaluation, compared, met),
        finding=None if verdict is None else verdict.finding,
        failed=[j.last_error or "no reason given" for j in jobs if j.state == JobState.FAILED],
        queued=queued,
        running=running,
    )


def _drift(
    evaluation: Evaluation, compared: Measurement | None, met: dict[str, bool]
) -> DriftState | None:
    bound = evaluation.drift
    if bound is None or "evaluation.drift" not in met:
        return None
    m = compared if compared is not None and compared.baseline else None
    bounds = {"tolerance": bound.tolerance}
    for key in ("max_moved", "max_mean_abs_diff", "max_abs_diff"):
        value = getattr(bound, key)
        if value is not None:
            bounds[key] = value
    return DriftState(
        against=None if m is None else m.baseline,
        mean_abs_diff=None if m is None else m.mean_abs_diff,
        max_abs_diff=None if m is None else m.max_abs_diff,
        moved=None if m is None else m.moved,
        tolerance=None if m is None else m.tolerance,
        bounds=bounds,
        met=met["evaluation.drift"],
    )
