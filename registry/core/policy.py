"""Promotion policy: which evidence a channel demands before it may point at a digest.

A ``Policy`` is parsed from TOML (ARCHITECTURE §8) and is always valid; its
``version`` is the sha256 of the exact bytes it came from. ``evaluate`` is pure:
given the facts about one artifact, it answers every requirement with met or
unmet and why, so the status endpoint and promote explain the same thing.

```toml
[channels.production]
require_publisher_signature = true
evaluation = { r2 = ">=0.85", mae = "<=8.0", rmse = "<=10.0" }
evaluation_source = "attestation"          # or "attestation-or-manifest"
approvals = { role = "governor", min = 1 }
max_regression = { r2 = 0.02 }             # direction taken from the evaluation rule
reproducibility = [{ profile = "cpu-tensorflow", min_workers = 2 }]
cross_profile = { max_abs_diff = 1e-4, min_token_agreement = 0.95 }  # CPU vs GPU results
require_runtime_image = true               # runtime.image pinned, held here, publisher-signed
runtime_image_channel = "stable"           # ... and that image is what NAME:stable holds
```

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
import operator
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.core.errors import CoreError
from registry.core.images import ImagePin
from registry.core.reproducibility import ProfileVerdict, Tolerance, compare

_RULE = re.compile(r"\s*(<=|>=|<|>|==)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
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


class InvalidPolicyError(CoreError):
    """The policy document is not valid; the message names the field."""


def channel_problem(channel: str) -> str | None:
    if not _CHANNEL.fullmatch(channel):
        return f"channel {channel!r} must match [a-z0-9][a-z0-9._-]{{0,62}}"
    return None


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    op: str
    value: float

    def holds(self, actual: float) -> bool:
        return _OPS[self.op](actual, self.value)

    @property
    def higher_is_better(self) -> bool:
        return self.op in (">=", ">")

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Reproducibility:
    profile: str
    min_workers: int


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    require_publisher_signature: bool = False
    evaluation: tuple[Threshold, ...] = ()
    evaluation_from_manifest: bool = False
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


def _thresholds(where: str, table: object) -> tuple[Threshold, ...]:
    if not isinstance(table, dict):
        raise InvalidPolicyError(f'{where}.evaluation must be a table of metric = "<op><number>"')
    out = []
    for metric, rule in sorted(table.items()):
        match = _RULE.fullmatch(rule) if isinstance(rule, str) else None
        if match is None:
            raise InvalidPolicyError(f"{where}.evaluation.{metric}: {rule!r} is not like '>=0.85'")
        out.append(Threshold(metric, match.group(1), float(match.group(2))))
    return tuple(out)


def _channel(name: str, doc: object) -> ChannelPolicy:
    where = f"channels.{name}"
    if channel_problem(name) or not isinstance(doc, dict):
        raise InvalidPolicyError(f"{where}: a table per channel, named like a name segment")
    unknown = set(doc) - _CHANNEL_KEYS
    if unknown:
        raise InvalidPolicyError(f"{where}: unknown keys {sorted(unknown)}")
    evaluation = _thresholds(where, doc.get("evaluation", {}))
    source = doc.get("evaluation_source", "attestation")
    if source not in ("attestation", "attestation-or-manifest"):
        raise InvalidPolicyError(
            f"{where}.evaluation_source: attestation or attestation-or-manifest"
        )
    approvals = doc.get("approvals", {"min": 0})
    if (
        not isinstance(approvals, dict)
        or approvals.get("role", "governor") != "governor"
        or not isinstance(approvals.get("min", 0), int)
        or approvals.get("min", 0) < 0
    ):
        raise InvalidPolicyError(f'{where}.approvals: {{ role = "governor", min = <n >= 0> }}')
    regression = doc.get("max_regression", {})
    directions = {t.metric for t in evaluation}
    if not isinstance(regression, dict) or any(
        m not in directions or not isinstance(v, int | float) or v < 0
        for m, v in regression.items()
    ):
        raise InvalidPolicyError(
            f"{where}.max_regression: metric = <allowed drop >= 0>, for metrics that have an "
            "evaluation rule (it says whether higher or lower is better)"
        )
    repro = doc.get("reproducibility", [])
    if not isinstance(repro, list) or any(
        not isinstance(r, dict)
        or not isinstance(r.get("profile"), str)
        or not isinstance(r.get("min_workers", 1), int)
        or r.get("min_workers", 1) < 1
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
        evaluation_from_manifest=source == "attestation-or-manifest",
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


@dataclass(frozen=True, slots=True)
class Requirement:
    name: str
    met: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"requirement": self.name, "met": self.met, "reason": self.reason}


def _metrics(rules: ChannelPolicy, facts: Facts) -> tuple[Mapping[str, float] | None, str]:
    if facts.attested_metrics is not None:
        return facts.attested_metrics, "the signed evaluation"
    if rules.evaluation_from_manifest and facts.manifest_metrics:
        return facts.manifest_metrics, "the manifest's metrics"
    return None, ""


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
    for rule in rules.evaluation:
        value = None if metrics is None else metrics.get(rule.metric)
        if value is None or not math.isfinite(value):
            where = "no signed evaluation/v1 statement" if metrics is None else f"{source} lacks it"
            out.append(Requirement(f"evaluation.{rule.metric}", False, f"{rule}: {where}"))
        else:
            out.append(
                Requirement(
                    f"evaluation.{rule.metric}", rule.holds(value), f"{rule}: {value:g} in {source}"
                )
            )
    for metric, allowed in sorted(rules.max_regression.items()):
        out.append(_regression(rules, metric, allowed, metrics, facts.current_metrics))
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
) -> Requirement:
    name = f"max_regression.{metric}"
    if current is None or metric not in current:
        return Requirement(name, True, "the channel holds nothing to compare with")
    if metrics is None or metric not in metrics:
        return Requirement(name, False, f"no evaluated {metric} to compare with the channel's")
    rule = next(t for t in rules.evaluation if t.metric == metric)
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
