"""Promotion policy: which evidence a channel demands before it may point at a digest.

A ``Policy`` is parsed from TOML (ARCHITECTURE §8) and is always valid; its
``version`` is the sha256 of the exact bytes it came from. ``evaluate`` is pure:
given the facts about one artifact, it answers every requirement with met or
unmet and why, so the status endpoint and promote explain the same thing.

```toml
[channels.production]
require_publisher_signature = true
approvals = { role = "governor", min = 1 }
max_regression = { r2 = 0.02 }             # direction taken from the evaluation rule
reproducibility = [{ profile = "cpu-tensorflow", min_workers = 2 }]
cross_profile = { max_abs_diff = 1e-4, min_token_agreement = 0.95 }  # CPU vs GPU results
require_runtime_image = true               # runtime.image pinned, held here, publisher-signed
runtime_image_channel = "stable"           # ... and that image is what NAME:stable holds

[channels.production.evaluation]           # an inline table must fit on one line (TOML 1.0)
source = "worker"
dataset = "veid/golden@v3"
profile = "cpu-tensorflow"
min_workers = 2
min_samples = 1000
thresholds = { r2 = ">=0.85", mae = "<=8.0", mean_bias = "-2..2" }
drift = { tolerance = 1.0, max_moved = 0.25, max_mean_abs_diff = 2.0 }
```

``evaluation`` (ARCHITECTURE §13; its rules are parsed by
``registry.core.evaluation_rules``) names who measures the metrics (``source``):
``worker``: the registry's own workers of ``profile`` measure them on the policy's
dataset (``NAME@VERSION``, resolved to a digest by the caller: ``Facts.dataset``), at
least ``min_workers`` of them agreeing bit for bit on the predictions, over at least
``min_samples`` samples; ``drift`` bounds how far predictions moved from what the
channel holds now. ``publisher``: the latest counted ``evaluation/v1`` statement (the
trainer's word); ``publisher-or-manifest``: that, or the manifest's ``metrics``. The
older flat form (``evaluation = { r2 = ">=0.85" }`` with ``evaluation_source =
"attestation"`` or ``"attestation-or-manifest"``) means ``publisher`` and
``publisher-or-manifest``. A threshold is ``"<op><number>"`` or a closed range
``"<low>..<high>"``.

A profile counts only while it is reproducible: any disagreement, within one
worker's runs or between workers, blocks promotion (``reproducibility.judge``).
With ``cross_profile`` and two or more profiles, each pair's agreed outputs must
also be within that tolerance; the comparison is reported either way.

``require_runtime_image`` binds models only (an image is its own runtime; a dataset
runs in none): the manifest pins ``runtime.image = "NAME@sha256:<hex>"``, repository
NAME holds that manifest here, and an image artifact of it (``NAME@TAG``, kind
``image``, a tag of that digest) carries a publisher signature. With
``runtime_image_channel``, one of those artifacts must also be what channel
``runtime_image_channel`` of NAME holds now (under that channel's own policy).
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.core.errors import InvalidPolicyError
from registry.core.evaluation import EvaluationVerdict, Measurement
from registry.core.evaluation_rules import (
    MAX_WORKERS,
    DatasetRef,
    Evaluation,
    parse_evaluation,
)
from registry.core.images import ImagePin
from registry.core.reproducibility import ProfileVerdict, Tolerance, compare

_CHANNEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_CHANNEL_KEYS = frozenset(
    {
        "require_publisher_signature",
        "evaluation",
        "evaluation_source",
        "approvals",
        "max_regression",
        "reproducibility",
        "cross_profile",
        "require_runtime_image",
        "runtime_image_channel",
    }
)


def channel_problem(channel: str) -> str | None:
    if not _CHANNEL.fullmatch(channel):
        return f"channel {channel!r} must match [a-z0-9][a-z0-9._-]{{0,62}}"
    return None


@dataclass(frozen=True, slots=True)
class Reproducibility:
    profile: str
    min_workers: int


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    require_publisher_signature: bool = False
    evaluation: Evaluation | None = None
    approvals_min: int = 0
    max_regression: Mapping[str, float] = field(default_factory=dict)
    reproducibility: tuple[Reproducibility, ...] = ()
    cross_profile: Tolerance | None = None
    require_runtime_image: bool = False
    runtime_image_channel: str | None = None  # only with require_runtime_image


@dataclass(frozen=True, slots=True)
class Policy:
    channels: Mapping[str, ChannelPolicy]
    version: str  # sha256 hex of the source bytes

    def for_channel(self, channel: str) -> ChannelPolicy:
        """The channel's rules; a channel the policy does not name has none."""
        return self.channels.get(channel, ChannelPolicy())

    @property
    def datasets(self) -> tuple[DatasetRef, ...]:
        """Every dataset a channel's evaluation names, sorted, once each."""
        refs = {
            str(c.evaluation.dataset): c.evaluation.dataset
            for c in self.channels.values()
            if c.evaluation is not None and c.evaluation.dataset is not None
        }
        return tuple(refs[k] for k in sorted(refs))


def _channel(name: str, doc: object) -> ChannelPolicy:
    where = f"channels.{name}"
    if channel_problem(name) or not isinstance(doc, dict):
        raise InvalidPolicyError(f"{where}: a table per channel, named like a name segment")
    unknown = set(doc) - _CHANNEL_KEYS
    if unknown:
        raise InvalidPolicyError(f"{where}: unknown keys {sorted(unknown)}")
    evaluation = parse_evaluation(where, doc)
    approvals = doc.get("approvals", {"min": 0})
    if (
        not isinstance(approvals, dict)
        or approvals.get("role", "governor") != "governor"
        or not isinstance(approvals.get("min", 0), int)
        or approvals.get("min", 0) < 0
    ):
        raise InvalidPolicyError(f'{where}.approvals: {{ role = "governor", min = <n >= 0> }}')
    regression = doc.get("max_regression", {})
    directions = {t.metric for t in (evaluation.thresholds if evaluation else ()) if t.one_sided}
    if not isinstance(regression, dict) or any(
        m not in directions or not isinstance(v, int | float) or v < 0
        for m, v in regression.items()
    ):
        raise InvalidPolicyError(
            f"{where}.max_regression: metric = <allowed drop >= 0>, for metrics that have a "
            "one-sided evaluation rule (it says whether higher or lower is better)"
        )
    repro = doc.get("reproducibility", [])
    if not isinstance(repro, list) or any(
        not isinstance(r, dict)
        or not isinstance(r.get("profile"), str)
        or not isinstance(r.get("min_workers", 1), int)
        or not 1 <= r.get("min_workers", 1) <= MAX_WORKERS
        for r in repro
    ):
        raise InvalidPolicyError(f'{where}.reproducibility: [{{ profile = "…", min_workers = n }}]')
    cross = doc.get("cross_profile")
    if cross is not None and (
        not isinstance(cross, dict)
        or set(cross) - {"max_abs_diff", "min_token_agreement"}
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in cross.values())
        or cross.get("max_abs_diff", 0) < 0
        or not 0 <= cross.get("min_token_agreement", 1) <= 1
    ):
        raise InvalidPolicyError(
            f"{where}.cross_profile: {{ max_abs_diff = <n >= 0>, min_token_agreement = <0..1> }}"
        )
    signature = doc.get("require_publisher_signature", False)
    if not isinstance(signature, bool):
        raise InvalidPolicyError(f"{where}.require_publisher_signature must be true or false")
    runtime_image, image_channel = _runtime_image_keys(where, doc)
    return ChannelPolicy(
        require_publisher_signature=signature,
        evaluation=evaluation,
        approvals_min=int(approvals.get("min", 0)),
        max_regression={m: float(v) for m, v in regression.items()},
        reproducibility=tuple(
            Reproducibility(r["profile"], int(r.get("min_workers", 1))) for r in repro
        ),
        cross_profile=None
        if cross is None
        else Tolerance(
            max_abs_diff=float(cross.get("max_abs_diff", 0.0)),
            min_token_agreement=float(cross.get("min_token_agreement", 1.0)),
        ),
        require_runtime_image=runtime_image,
        runtime_image_channel=image_channel,
    )


def _runtime_image_keys(where: str, doc: Mapping[str, object]) -> tuple[bool, str | None]:
    """(``require_runtime_image``, ``runtime_image_channel``) of a channel's table."""
    required = doc.get("require_runtime_image", False)
    if not isinstance(required, bool):
        raise InvalidPolicyError(f"{where}.require_runtime_image must be true or false")
    channel = doc.get("runtime_image_channel")
    if channel is None:
        return required, None
    if not isinstance(channel, str) or channel_problem(channel):
        raise InvalidPolicyError(
            f"{where}.runtime_image_channel: a channel name matching [a-z0-9][a-z0-9._-]{{0,62}}"
        )
    if not required:
        raise InvalidPolicyError(
            f"{where}.runtime_image_channel needs require_runtime_image = true beside it"
        )
    return required, channel


def parse_policy(source: bytes) -> Policy:
    """Raises InvalidPolicyError naming the first problem."""
    try:
        doc = tomllib.loads(source.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidPolicyError(f"policy is not TOML: {exc}") from exc
    unknown = set(doc) - {"channels"}
    if unknown:
        raise InvalidPolicyError(f"unknown top-level keys {sorted(unknown)}")
    channels = doc.get("channels", {})
    if not isinstance(channels, dict):
        raise InvalidPolicyError("channels must be a table")
    return Policy(
        channels={name: _channel(name, spec) for name, spec in channels.items()},
        version=hashlib.sha256(source).hexdigest(),
    )


@dataclass(frozen=True, slots=True)
class ImageArtifact:
    """An artifact ``NAME@TAG`` of kind ``image`` that wraps a pinned image manifest, TAG
    being a tag of that manifest in repository NAME."""

    tag: str
    digest: str  # blake3:<hex>
    publisher_keys: frozenset[str] = frozenset()  # as ``Facts.publisher_keys``, about it
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class RuntimeImage:
    """What the registry verified about the image a model's ``runtime.image`` pins."""

    pin: ImagePin
    present: bool = False  # repository ``pin.name`` holds manifest ``pin.digest`` here
    artifacts: tuple[ImageArtifact, ...] = ()  # sorted by tag
    channel_holds: str | None = None  # what ``runtime_image_channel`` of pin.name holds now


@dataclass(frozen=True, slots=True)
class DatasetFacts:
    """What the registry holds for the dataset a channel's evaluation names."""

    ref: DatasetRef
    digest: str | None = None  # blake3:<hex>; None: NAME@VERSION is not in this registry
    samples: int | None = None  # its description's sample count
    problem: str | None = None  # why it cannot serve (not a dataset artifact, revoked)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the registry verified about one artifact, for one channel."""

    publisher_keys: frozenset[str] = frozenset()  # keyids of accepted publish/v1 statements
    attested_metrics: Mapping[str, float] | None = None  # latest accepted evaluation/v1
    manifest_metrics: Mapping[str, float] = field(default_factory=dict)
    approval_keys: frozenset[str] = frozenset()  # distinct unrevoked governor keys, this channel
    current_metrics: Mapping[str, float] | None = None  # the channel's current digest, if any
    reproducibility: Mapping[str, ProfileVerdict] = field(default_factory=dict)  # by profile
    revoked_reason: str | None = None  # a revoked artifact never goes to any channel
    kind: str = "model"  # the artifact's kind: only models pin a runtime image
    runtime_image: RuntimeImage | None = None  # None: the manifest pins no runtime image
    subject: str | None = None  # the artifact's own digest (blake3:<hex>)
    current: str | None = None  # the digest the channel holds now, if any
    dataset: DatasetFacts | None = None  # the policy's dataset (source worker)
    evaluation: EvaluationVerdict | None = None  # workers' measurements on that dataset


@dataclass(frozen=True, slots=True)
class Requirement:
    name: str
    met: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"requirement": self.name, "met": self.met, "reason": self.reason}


def _metrics(rules: ChannelPolicy, facts: Facts) -> tuple[Mapping[str, float] | None, str]:
    evaluation = rules.evaluation
    if evaluation is None:
        return None, ""
    if evaluation.measured:
        verdict = facts.evaluation
        agreed = None if verdict is None else verdict.agreed
        if verdict is None or agreed is None:  # judge kept only the policy's dataset
            return None, ""
        return agreed.metrics, f"the measurement of {len(verdict.measurements)} worker(s)"
    if facts.attested_metrics is not None:
        return facts.attested_metrics, "the signed evaluation"
    if evaluation.source == "publisher-or-manifest" and facts.manifest_metrics:
        return facts.manifest_metrics, "the manifest's metrics"
    return None, ""


def current_metrics(rules: ChannelPolicy, facts: Facts) -> Mapping[str, float] | None:
    """What the channel's holder measured, to compare with: with worker measurement, the
    baseline that enough agreeing workers measured beside this artifact, else the
    holder's own agreed measurement on the same dataset."""
    evaluation = rules.evaluation
    if evaluation is not None and evaluation.measured and facts.evaluation is not None:
        compared = facts.evaluation.against(facts.current)
        if len(compared) >= evaluation.min_workers:
            return compared[0].baseline_metrics
    return facts.current_metrics


def against_current(verdict: EvaluationVerdict, current: str | None) -> Measurement | None:
    """The first measurement that compared with what the channel holds now; None when
    none did or the workers disagree (``EvaluationVerdict.against``)."""
    compared = verdict.against(current)
    return compared[0] if compared else None


def _push_dataset(ref: DatasetRef) -> str:
    return f"reliquary push DIR --kind dataset --name {ref.name} --version {ref.version}"


def _measured(evaluation: Evaluation, facts: Facts) -> list[Requirement]:
    """``evaluation`` with ``source = "worker"``: the dataset, the workers' agreement, each
    threshold on the agreed metrics, and drift from what the channel holds."""
    assert evaluation.dataset is not None and evaluation.profile is not None
    ref, profile = evaluation.dataset, evaluation.profile
    drift = evaluation.drift is not None and facts.current is not None
    names = [
        "evaluation.dataset",
        "evaluation.workers",
        *(f"evaluation.{t.metric}" for t in evaluation.thresholds),
        *(["evaluation.drift"] if drift else []),
    ]
    dataset = facts.dataset
    if dataset is None or dataset.digest is None or dataset.problem is not None:
        why = (
            f"dataset {ref}: {dataset.problem}"
            if dataset is not None and dataset.problem is not None
            else f"the policy's dataset {ref} is not in this registry: push it ({_push_dataset(ref)})"
        )
        return [Requirement(n, False, why) for n in names]
    samples = dataset.samples or 0
    out = [
        Requirement(
            "evaluation.dataset",
            samples >= evaluation.min_samples,
            f"{ref} = {dataset.digest}: {samples} samples"
            + (
                f" (the policy asks for at least {evaluation.min_samples})"
                if samples >= evaluation.min_samples
                else f", below the policy's minimum of {evaluation.min_samples}: push a "
                "larger dataset version and name it in the policy"
            ),
        )
    ]
    verdict = facts.evaluation or EvaluationVerdict(profile)
    agreeing, finding = verdict.agreeing_workers, verdict.finding
    if finding is not None:
        why = f"{profile} workers' measurements on {ref} disagree: {finding}"
    else:
        why = f"{agreeing} of {evaluation.min_workers} {profile} workers agree on the predictions"
        agreed = verdict.agreed
        if agreed is not None:
            why += f" {agreed.predictions} ({agreed.samples} samples of {ref})"
        if verdict.refusals and agreeing < evaluation.min_workers:
            why += "; evaluation failed: " + "; ".join(verdict.refusals)
    partial = verdict.agreed is not None and verdict.agreed.samples != samples
    if partial:
        why += f"; they measured {verdict.agreed.samples if verdict.agreed else 0} samples, the "
        why += f"dataset has {samples}: ask for a new measurement of the whole dataset"
    enough = finding is None and agreeing >= evaluation.min_workers and not partial
    out.append(Requirement("evaluation.workers", enough, why))
    agreed = verdict.agreed if enough else None
    for rule in evaluation.thresholds:
        name = f"evaluation.{rule.metric}"
        value = None if agreed is None else agreed.metrics.get(rule.metric)
        if value is None:
            where = (
                "not measured yet"
                if agreed is None
                else "the workers did not report it (is it a metric of this kind of model?)"
            )
            out.append(Requirement(name, False, f"{rule}: {where}"))
        else:
            out.append(
                Requirement(
                    name,
                    rule.holds(value),
                    f"{rule}: {value:.6g} measured on {ref} by {agreeing} workers",
                )
            )
    if drift:
        out.append(_drift_requirement(evaluation, facts, verdict if enough else None))
    return out


_MEASURE_AGAIN = "reliquary verify REF --evaluate --channel CHANNEL"


def _drift_requirement(
    evaluation: Evaluation, facts: Facts, verdict: EvaluationVerdict | None
) -> Requirement:
    """Drift from what the channel holds now, on the measurements of at least
    ``min_workers`` workers that compared with exactly that artifact."""
    bound = evaluation.drift
    assert bound is not None
    name, current = "evaluation.drift", facts.current
    if current == facts.subject:
        return Requirement(name, True, "the channel holds this artifact: nothing drifted")
    if verdict is None:
        return Requirement(name, False, f"drift from {current}: not measured yet")
    compared = verdict.against(current)
    if len(compared) < evaluation.min_workers:
        others = sorted(
            {str(m.baseline or "nothing") for m in verdict.measurements} - {str(current)}
        )
        return Requirement(
            name,
            False,
            f"{len(compared)} of {evaluation.min_workers} workers compared with {current}, "
            f"which the channel holds now"
            + (f" (they compared with {', '.join(others)})" if others else "")
            + f": ask for a new measurement ({_MEASURE_AGAIN})",
        )
    agreed = compared[0]
    if agreed.moved is None:
        return Requirement(name, False, f"drift from {current}: no figures in the measurement")
    if agreed.tolerance != bound.tolerance:
        return Requirement(
            name,
            False,
            f"measured with tolerance {agreed.tolerance:g}, the policy's is {bound.tolerance:g}: "
            f"ask for a new measurement ({_MEASURE_AGAIN})",
        )
    figures = (
        f"mean |change| {agreed.mean_abs_diff:.4g}, max |change| {agreed.max_abs_diff:.4g}, "
        f"{agreed.moved:.1%} of samples moved by more than {bound.tolerance:g}"
    )
    over = []
    if bound.max_moved is not None and agreed.moved > bound.max_moved:
        over.append(f"moved share above {bound.max_moved:.1%}")
    if (
        bound.max_mean_abs_diff is not None
        and (agreed.mean_abs_diff or 0) > bound.max_mean_abs_diff
    ):
        over.append(f"mean |change| above {bound.max_mean_abs_diff:g}")
    if bound.max_abs_diff is not None and (agreed.max_abs_diff or 0) > bound.max_abs_diff:
        over.append(f"max |change| above {bound.max_abs_diff:g}")
    said = f"drift past the bound ({'; '.join(over)})" if over else "within the bounds"
    return Requirement(name, not over, f"against {current}: {figures}: {said}")


def evaluate(rules: ChannelPolicy, facts: Facts) -> list[Requirement]:
    """Every requirement of ``rules`` for ``facts``, met or not, with the reason."""
    out: list[Requirement] = []
    if facts.revoked_reason is not None:
        out.append(
            Requirement("not_revoked", False, f"the artifact was revoked: {facts.revoked_reason}")
        )
    if rules.require_publisher_signature:
        signed = bool(facts.publisher_keys)
        out.append(
            Requirement(
                "publisher_signature",
                signed,
                f"signed by publisher key {sorted(facts.publisher_keys)[0][:16]}…"
                if signed
                else "no accepted publish/v1 statement from a registered publisher key",
            )
        )
    if rules.require_runtime_image:
        out += _runtime_image(rules, facts)
    metrics, source = _metrics(rules, facts)
    evaluation = rules.evaluation
    if evaluation is not None and evaluation.measured:
        out += _measured(evaluation, facts)
    elif evaluation is not None:
        for rule in evaluation.thresholds:
            value = None if metrics is None else metrics.get(rule.metric)
            if value is None or not math.isfinite(value):
                where = (
                    "no signed evaluation/v1 statement" if metrics is None else f"{source} lacks it"
                )
                out.append(Requirement(f"evaluation.{rule.metric}", False, f"{rule}: {where}"))
            else:
                out.append(
                    Requirement(
                        f"evaluation.{rule.metric}",
                        rule.holds(value),
                        f"{rule}: {value:g} in {source}",
                    )
                )
    compared_with = current_metrics(rules, facts)
    for metric, allowed in sorted(rules.max_regression.items()):
        out.append(_regression(rules, metric, allowed, metrics, compared_with, facts))
    if rules.approvals_min:
        have = len(facts.approval_keys)
        out.append(
            Requirement(
                "approvals",
                have >= rules.approvals_min,
                f"{have} of {rules.approvals_min} distinct governor approvals for this channel",
            )
        )
    for need in rules.reproducibility:
        verdict = facts.reproducibility.get(need.profile, ProfileVerdict(need.profile))
        have, finding = verdict.agreeing_workers, verdict.finding
        out.append(
            Requirement(
                f"reproducibility.{need.profile}",
                finding is None and have >= need.min_workers,
                f"non-reproducible on {need.profile}: {finding}"
                if finding is not None
                else f"{have} of {need.min_workers} agreeing worker attestations for "
                f"{need.profile}" + (f" (output {verdict.output})" if verdict.output else ""),
            )
        )
    if rules.cross_profile is not None:
        profiles = [r.profile for r in rules.reproducibility]
        for i, a in enumerate(profiles):
            for b in profiles[i + 1 :]:
                ok, why = compare(
                    facts.reproducibility.get(a, ProfileVerdict(a)),
                    facts.reproducibility.get(b, ProfileVerdict(b)),
                    rules.cross_profile,
                )
                out.append(Requirement(f"cross_profile.{a}~{b}", ok, why))
    return out


def _regression(
    rules: ChannelPolicy,
    metric: str,
    allowed: float,
    metrics: Mapping[str, float] | None,
    current: Mapping[str, float] | None,
    facts: Facts,
) -> Requirement:
    """With worker measurement, a channel that holds an artifact must be compared with it
    (fail closed); otherwise a holder without the metric compares with nothing."""
    name = f"max_regression.{metric}"
    measured = rules.evaluation is not None and rules.evaluation.measured
    if measured and facts.current is not None and facts.current != facts.subject:
        if current is None or metric not in current:
            return Requirement(
                name,
                False,
                f"the channel holds {facts.current}, and no measurement of it on the policy's "
                f"dataset gives its {metric}: ask for a new measurement ({_MEASURE_AGAIN}), "
                "which also measures what the channel holds",
            )
    elif current is None or metric not in current:
        return Requirement(name, True, "the channel holds nothing to compare with")
    if metrics is None or metric not in metrics:
        return Requirement(name, False, f"no evaluated {metric} to compare with the channel's")
    assert rules.evaluation is not None  # parse_policy: max_regression needs its rule
    rule = next(t for t in rules.evaluation.thresholds if t.metric == metric)
    drop = (
        current[metric] - metrics[metric]
        if rule.higher_is_better
        else metrics[metric] - current[metric]
    )
    return Requirement(
        name,
        drop <= allowed + 1e-12,
        f"{metric} {metrics[metric]:g} vs {current[metric]:g} now in the channel: "
        f"regression {max(drop, 0.0):g}, allowed {allowed:g}",
    )


_PUSH_IMAGE = "skopeo copy --preserve-digests … docker://HOST/{name}:TAG"


def _runtime_image(rules: ChannelPolicy, facts: Facts) -> list[Requirement]:
    """``require_runtime_image``: the pin, the image held here, a publisher signature on an
    artifact of it, and (with ``runtime_image_channel``) that artifact on that channel."""
    if facts.kind != "model":
        why = f"a {facts.kind} artifact pins no runtime image: the requirement binds models"
        return [Requirement("runtime_image", True, why)]
    image = facts.runtime_image
    channel = rules.runtime_image_channel
    names = ["runtime_image", "runtime_image.signature"]
    names += [] if channel is None else ["runtime_image.channel"]
    if image is None:
        pin_it = (
            "the manifest pins no runtime image: push a version whose runtime.image = "
            '"NAME@sha256:<hex>" (reliquary push --runtime image=NAME@sha256:<hex>)'
        )
        return [Requirement(name, False, pin_it) for name in names]
    pin, name = str(image.pin), image.pin.name
    if not image.present:
        absent = (
            f"{pin}: this registry holds no such image; push it first "
            f"({_PUSH_IMAGE.format(name=name)})"
        )
        return [Requirement(n, False, absent) for n in names]
    out = [Requirement("runtime_image", True, f"pins {pin}, held here")]
    live = [a for a in image.artifacts if not a.revoked]
    out.append(_image_signature(image, live))
    if channel is not None:
        out.append(_on_channel(image, channel, live))
    return out


def _image_signature(image: RuntimeImage, live: list[ImageArtifact]) -> Requirement:
    name = image.pin.name
    signed = [a for a in live if a.publisher_keys]
    if signed:
        keyid = sorted(signed[0].publisher_keys)[0]
        why = f"{name}@{signed[0].tag} signed by publisher key {keyid[:16]}…"
        return Requirement("runtime_image.signature", True, why)
    if live:
        tags = ", ".join(f"{name}@{a.tag}" for a in live)
        why = f"no accepted publish/v1 statement from a registered publisher key on {tags}"
    elif revoked := [a for a in image.artifacts if a.revoked]:
        tags = ", ".join(f"{name}@{a.tag}" for a in revoked)
        why = f"every image artifact of {image.pin} was revoked ({tags})"
    else:
        why = (
            f"no image artifact {name}@TAG wraps {image.pin.digest} (a tag of it pushed here "
            f"makes one): push it by tag ({_PUSH_IMAGE.format(name=name)}) and sign that"
        )
    return Requirement("runtime_image.signature", False, why)


def _on_channel(image: RuntimeImage, channel: str, live: list[ImageArtifact]) -> Requirement:
    name = image.pin.name
    held = next((a for a in live if a.digest == image.channel_holds), None)
    if held is not None:
        why = f"{name}:{channel} holds {name}@{held.tag} ({held.digest})"
        return Requirement("runtime_image.channel", True, why)
    candidates = " or ".join(f"{name}@{a.tag}" for a in live) or f"a tag of {image.pin}"
    where = (
        f"{name} has no channel {channel!r}"
        if image.channel_holds is None
        else f"{name}:{channel} holds {image.channel_holds}, not an artifact of {image.pin}"
    )
    return Requirement("runtime_image.channel", False, f"{where}: promote {candidates} there")
