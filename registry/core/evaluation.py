"""Independent evaluation (ARCHITECTURE §13): the metrics workers measure, and the verdict
over several workers' measured ``evaluation/v1`` statements.

Metrics a worker computes (``workers.metrics``), by name:

- tensor models, prediction ``p`` against label ``y`` per sample, on the 0..100 scale of
  the labels: ``r2``, ``mae``, ``rmse``, ``p95_abs_error`` (95th percentile of
  ``|p - y|``, linear interpolation), ``mean_bias`` (mean of ``p - y``), ``accuracy_<k>``
  (share of samples with ``|p - y| <= k``, for any number ``k``: ``accuracy_5``,
  ``accuracy_10``, ``accuracy_2.5``);
- LLMs, generated against expected completion per prompt: ``exact_match`` (share of
  prompts whose generated text equals the expected text) and ``token_agreement`` (share
  of the expected completion's tokens, under the model's tokenizer, generated at the
  same position);
- both: ``samples``, the number of samples measured.

Verdict (``judge``): measured statements count per worker key and baseline (the first
one each key made about this dataset against each artifact it compared with, in log
order: a replay changes nothing, and a new measurement counts only once the channel
holds another artifact to compare with); every statement must agree bit for bit on the
predictions digest, and those that compared with one baseline on its predictions,
else the disagreement is a finding that stays. Drift is judged only on the
measurements that compared with what the channel holds now (``against``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from registry.core.predicates import EvaluationPredicate

TENSOR_METRICS = ("r2", "mae", "rmse", "p95_abs_error", "mean_bias", "samples")
LLM_METRICS = ("exact_match", "token_agreement", "samples")
_ACCURACY = re.compile(r"accuracy_(\d+(?:\.\d+)?)")


def accuracy_points(metric: str) -> float | None:
    """``k`` of ``accuracy_<k>`` (None for any other name)."""
    match = _ACCURACY.fullmatch(metric)
    return None if match is None else float(match.group(1))


def metric_problem(metric: str) -> str | None:
    """Why workers cannot measure ``metric`` (None when they can)."""
    if metric in TENSOR_METRICS or metric in LLM_METRICS or accuracy_points(metric) is not None:
        return None
    return (
        f"workers do not measure {metric!r}; they measure {', '.join(TENSOR_METRICS)}, "
        f"accuracy_<points> (tensor models) and {', '.join(LLM_METRICS[:2])} (LLMs)"
    )


@dataclass(frozen=True, slots=True)
class Measurement:
    """One worker's counted measured ``evaluation/v1`` statement, as the verdict sees it."""

    keyid: str  # the key that signed it (not what the predicate claims)
    profile: str
    dataset: str
    samples: int
    predictions: str  # digest of the canonical predictions
    metrics: Mapping[str, float]
    baseline: str | None = None  # drift.against: the artifact it compared with
    baseline_predictions: str | None = None
    baseline_metrics: Mapping[str, float] | None = None
    mean_abs_diff: float | None = None
    max_abs_diff: float | None = None
    moved: float | None = None  # share of samples that moved by more than tolerance
    tolerance: float | None = None
    channel: str | None = None

    @classmethod
    def of(cls, keyid: str, predicate: EvaluationPredicate) -> Measurement:
        """Of a ``measured`` predicate."""
        assert predicate.predictions is not None and predicate.dataset is not None
        drift = predicate.drift
        return cls(
            keyid=keyid,
            profile=str(predicate.profile),
            dataset=str(predicate.dataset),
            samples=int(predicate.samples or 0),
            predictions=str(predicate.predictions.digest),
            metrics={k: float(v) for k, v in predicate.metrics.items()},
            baseline=None if drift is None else str(drift.against),
            baseline_predictions=None if drift is None else str(drift.predictions),
            baseline_metrics=None
            if drift is None
            else {k: float(v) for k, v in drift.metrics.items()},
            mean_abs_diff=None if drift is None else float(drift.mean_abs_diff),
            max_abs_diff=None if drift is None else float(drift.max_abs_diff),
            moved=None if drift is None else float(drift.moved),
            tolerance=None if drift is None else float(drift.tolerance),
            channel=predicate.channel,
        )


@dataclass(frozen=True, slots=True)
class EvaluationVerdict:
    """The measurements of one artifact on one dataset by one profile's workers."""

    profile: str
    measurements: tuple[Measurement, ...] = ()  # one per (key, baseline), in log order
    refusals: tuple[str, ...] = ()  # evaluation jobs that failed for good: why

    @property
    def finding(self) -> str | None:
        """Why the workers' measurements cannot count (they disagree); None if they agree."""
        problems = []
        predictions = {m.predictions for m in self.measurements}
        if len(predictions) > 1:
            problems.append(
                "workers disagree on the predictions: "
                + "; ".join(
                    f"{d} from {', '.join(m.keyid[:16] for m in self.measurements if m.predictions == d)}"
                    for d in sorted(predictions)
                )
            )
        if not problems and len({_measured(m) for m in self.measurements}) > 1:
            problems.append(
                "workers with the same predictions report different samples or metrics: "
                + "; ".join(f"{m.keyid[:16]}: {dict(m.metrics)}" for m in self.measurements)
            )
        baselines: dict[str, set[tuple[object, ...]]] = {}
        for m in self.measurements:
            if m.baseline is not None:
                baselines.setdefault(m.baseline, set()).add(_compared(m))
        for baseline, seen in sorted(baselines.items()):
            if len(seen) > 1:
                problems.append(
                    f"workers disagree on what they compared with {baseline} (its predictions, "
                    f"its metrics or the drift figures): "
                    + ", ".join(sorted({str(c[0]) for c in seen}))
                )
        return "; ".join(problems) or None

    @property
    def agreed(self) -> Measurement | None:
        """The measurement every worker agrees on, or None (all agree: any serves)."""
        if self.finding is not None or not self.measurements:
            return None
        return self.measurements[0]

    @property
    def workers(self) -> tuple[str, ...]:
        """The keys that measured, in the order they first did."""
        return tuple(dict.fromkeys(m.keyid for m in self.measurements))

    @property
    def agreeing_workers(self) -> int:
        return 0 if self.finding is not None else len(self.workers)

    def against(self, baseline: str | None) -> tuple[Measurement, ...]:
        """The measurements that compared with ``baseline`` (one per key); none while the
        workers disagree, or when ``baseline`` is None."""
        if baseline is None or self.finding is not None:
            return ()
        return tuple(m for m in self.measurements if m.baseline == baseline)


def _measured(m: Measurement) -> tuple[object, ...]:
    """What a worker measured of the artifact itself: equal for every agreeing worker."""
    return (m.predictions, m.samples, tuple(sorted(m.metrics.items())))


def _compared(m: Measurement) -> tuple[object, ...]:
    """What a worker measured of the baseline: equal for every worker that compared with it."""
    metrics = tuple(sorted((m.baseline_metrics or {}).items()))
    return (m.baseline_predictions, metrics, m.mean_abs_diff, m.max_abs_diff, m.moved, m.tolerance)


def judge(
    profile: str,
    dataset: str,
    results: Iterable[tuple[str, EvaluationPredicate]],
    refusals: Iterable[str] = (),
) -> EvaluationVerdict:
    """(signing keyid, predicate) pairs in log order -> the verdict for ``profile`` on
    ``dataset``: measured statements of that profile about that dataset, the first per
    key and baseline."""
    seen: dict[tuple[str, str | None], Measurement] = {}
    for keyid, predicate in results:
        if (
            predicate.measured
            and predicate.profile == profile
            and str(predicate.dataset) == dataset
        ):
            baseline = None if predicate.drift is None else str(predicate.drift.against)
            if (keyid, baseline) not in seen:
                seen[keyid, baseline] = Measurement.of(keyid, predicate)
    return EvaluationVerdict(profile, tuple(seen.values()), tuple(refusals))


def metric_changes(
    metrics: Mapping[str, float], baseline: Mapping[str, float] | None
) -> dict[str, float]:
    """Per metric, measured minus the baseline's (metrics both have)."""
    if baseline is None:
        return {}
    return {k: metrics[k] - baseline[k] for k in sorted(metrics) if k in baseline}
