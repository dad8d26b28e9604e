"""What a channel's ``evaluation`` rule says (ARCHITECTURE §8, §13): who measures the
metrics that gate it (``source``), on which dataset, by how many workers, over how many
samples, the thresholds and the drift bounds; parsed from the policy's TOML
(``parse_evaluation``, called by ``registry.core.policy.parse_policy``).

A threshold is ``"<op><number>"`` (``>=``, ``<=``, ``>``, ``<``, ``==``) or a closed
range ``"<low>..<high>"``. With ``source = "worker"``, every metric must be one the
workers measure (``registry.core.evaluation.metric_problem``), the dataset is
``NAME@VERSION`` (optionally pinned by ``dataset_digest``), and an LLM profile's drift
tolerance is 0. The older flat form (metric rules directly in ``evaluation``, with
``evaluation_source``) means ``publisher`` or ``publisher-or-manifest``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from registry.core.errors import InvalidPolicyError
from registry.core.evaluation import metric_problem
from registry.core.manifest import validate_name, validate_version
from registry.core.profiles import LLM_PROFILES, PROFILE_ENGINES

_NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_RULE = re.compile(r"\s*(<=|>=|<|>|==)\s*" + _NUMBER + r"\s*")
_RANGE = re.compile(r"\s*" + _NUMBER + r"\s*\.\.\s*" + _NUMBER + r"\s*")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
SOURCES = ("worker", "publisher", "publisher-or-manifest")
_LEGACY_SOURCES = {"attestation": "publisher", "attestation-or-manifest": "publisher-or-manifest"}
_EVALUATION_KEYS = frozenset(
    {
        "source",
        "dataset",
        "dataset_digest",
        "profile",
        "min_workers",
        "min_samples",
        "thresholds",
        "drift",
    }
)
_DRIFT_KEYS = frozenset({"tolerance", "max_moved", "max_mean_abs_diff", "max_abs_diff"})
MAX_WORKERS = 16  # workers a rule may ask for: as many jobs are queued per push
_BLAKE3 = re.compile(r"blake3:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Threshold:
    """``metric <op> value``, or with ``op == ".."`` the closed range ``value..high``."""

    metric: str
    op: str
    value: float
    high: float | None = None  # only for a range

    def holds(self, actual: float) -> bool:
        if self.op == "..":
            assert self.high is not None  # a range has both ends
            return self.value <= actual <= self.high
        return _OPS[self.op](actual, self.value)

    @property
    def higher_is_better(self) -> bool:
        return self.op in (">=", ">")

    @property
    def one_sided(self) -> bool:
        return self.op in ("<=", ">=", "<", ">")

    @property
    def rule(self) -> str:
        """The rule as the policy writes it (``>=0.85``, ``-2..2``)."""
        if self.op == "..":
            return f"{self.value:g}..{self.high:g}"
        return f"{self.op}{self.value:g}"

    def __str__(self) -> str:
        if self.op == "..":
            return f"{self.value:g} <= {self.metric} <= {self.high:g}"
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """The dataset a policy names, ``NAME@VERSION``; a digest once resolved (by the caller)."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class DriftBound:
    """How far predictions may move from what the channel holds, on the same dataset."""

    tolerance: float  # a sample moved when one of its predicted values changed by more
    max_moved: float | None = None  # share of samples that moved (0..1)
    max_mean_abs_diff: float | None = None
    max_abs_diff: float | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Who measures the metrics that gate the channel, on what, and the thresholds."""

    thresholds: tuple[Threshold, ...] = ()
    source: str = "publisher"  # one of SOURCES
    dataset: DatasetRef | None = None  # source worker only
    dataset_digest: str | None = None  # pins what ``dataset`` must resolve to (blake3:<hex>)
    profile: str | None = None  # source worker only: the profile whose workers measure
    min_workers: int = 1
    min_samples: int = 1
    drift: DriftBound | None = None  # source worker only

    @property
    def measured(self) -> bool:
        return self.source == "worker"

    def threshold_rules(self) -> dict[str, str]:
        """metric -> rule, as a statement records the thresholds applied."""
        return {t.metric: t.rule for t in self.thresholds}


def _thresholds(where: str, table: object, *, measured: bool) -> tuple[Threshold, ...]:
    if not isinstance(table, dict):
        raise InvalidPolicyError(
            f'{where} must be a table of metric = "<op><number>" or "<low>..<high>"'
        )
    out = []
    for metric, rule in sorted(table.items()):
        text = rule if isinstance(rule, str) else ""
        one, two = _RULE.fullmatch(text), _RANGE.fullmatch(text)
        numbers = two.groups() if two is not None else one.groups()[1:] if one is not None else ()
        if not all(math.isfinite(float(n)) for n in numbers):
            raise InvalidPolicyError(f"{where}.{metric}: {rule!r} names a number no float holds")
        if one is not None:
            out.append(Threshold(metric, one.group(1), float(one.group(2))))
        elif two is not None and float(two.group(1)) <= float(two.group(2)):
            out.append(Threshold(metric, "..", float(two.group(1)), float(two.group(2))))
        else:
            raise InvalidPolicyError(
                f"{where}.{metric}: {rule!r} is not like '>=0.85' or '-2..2' (low <= high)"
            )
        if measured and (why := metric_problem(metric)) is not None:
            raise InvalidPolicyError(f"{where}.{metric}: {why}")
    return tuple(out)


def _count(
    where: str, doc: Mapping[str, object], key: str, default: int, least: int, most: int = 2**62
) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        at_most = f" and <= {most}" if most < 2**62 else ""
        raise InvalidPolicyError(f"{where}.{key} must be an integer >= {least}{at_most}")
    return value


def _dataset_ref(where: str, value: object) -> DatasetRef:
    name, _, version = value.partition("@") if isinstance(value, str) else ("", "", "")
    if not version or validate_name(name) or validate_version(version):
        raise InvalidPolicyError(
            f'{where}.dataset: "NAME@VERSION" of a dataset artifact, got {value!r}'
        )
    return DatasetRef(name, version)


def _drift(where: str, doc: object) -> DriftBound:
    where = f"{where}.drift"
    if not isinstance(doc, dict) or set(doc) - _DRIFT_KEYS or "tolerance" not in doc:
        raise InvalidPolicyError(
            f"{where}: {{ tolerance = <n >= 0>, max_moved = <0..1>, max_mean_abs_diff = "
            "<n>, max_abs_diff = <n> }} (tolerance required, at least one bound)"
        )
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < math.inf
        for v in doc.values()
    ):
        raise InvalidPolicyError(f"{where}: every value is a number >= 0")
    if len(doc) < 2 or doc.get("max_moved", 0) > 1:
        raise InvalidPolicyError(f"{where}: at least one bound; max_moved is a share, 0..1")

    def bound(key: str) -> float | None:
        return None if key not in doc else float(doc[key])

    return DriftBound(
        tolerance=float(doc["tolerance"]),
        max_moved=bound("max_moved"),
        max_mean_abs_diff=bound("max_mean_abs_diff"),
        max_abs_diff=bound("max_abs_diff"),
    )


def parse_evaluation(where: str, doc: Mapping[str, object]) -> Evaluation | None:
    """The channel's ``evaluation`` (and the older ``evaluation_source`` beside it)."""
    table = doc.get("evaluation")
    legacy = doc.get("evaluation_source")
    if table is None:
        if legacy is not None:
            raise InvalidPolicyError(f"{where}.evaluation_source needs an evaluation beside it")
        return None
    where = f"{where}.evaluation"
    if not isinstance(table, dict):
        raise InvalidPolicyError(f"{where} must be a table")
    if "thresholds" not in table:  # the flat form: metric rules, evaluation_source beside
        source = _LEGACY_SOURCES.get(str(legacy or "attestation"))
        if source is None:
            raise InvalidPolicyError(
                f"{where}_source: attestation or attestation-or-manifest (or write "
                'evaluation = { source = "worker" | "publisher" | "publisher-or-manifest", '
                "thresholds = { … } })"
            )
        return Evaluation(_thresholds(where, table, measured=False), source=source)
    if legacy is not None:
        raise InvalidPolicyError(f"{where}: say source inside it, not evaluation_source")
    unknown = set(table) - _EVALUATION_KEYS
    if unknown:
        raise InvalidPolicyError(f"{where}: unknown keys {sorted(unknown)}")
    source = table.get("source", "worker")
    if source not in SOURCES:
        raise InvalidPolicyError(f"{where}.source: one of {', '.join(SOURCES)}")
    measured = source == "worker"
    thresholds = _thresholds(f"{where}.thresholds", table["thresholds"], measured=measured)
    if not measured:
        extra = sorted(set(table) - {"source", "thresholds"})
        if extra:
            raise InvalidPolicyError(
                f'{where}: {extra} apply only to source = "worker" (the registry\'s workers '
                "measure on the policy's dataset)"
            )
        return Evaluation(thresholds, source=source)
    if "dataset" not in table or "profile" not in table:
        raise InvalidPolicyError(
            f'{where}: source = "worker" needs dataset = "NAME@VERSION" and profile = '
            f"one of {sorted(PROFILE_ENGINES)}"
        )
    profile = table["profile"]
    if not isinstance(profile, str) or profile not in PROFILE_ENGINES:
        raise InvalidPolicyError(f"{where}.profile: one of {sorted(PROFILE_ENGINES)}")
    drift = None if "drift" not in table else _drift(where, table["drift"])
    if drift is not None and drift.tolerance != 0 and profile in LLM_PROFILES:
        raise InvalidPolicyError(
            f"{where}.drift.tolerance: an LLM's prediction moved when any of its tokens did; "
            "the tolerance is 0 (bound max_moved, the share of prompts that changed)"
        )
    pinned = table.get("dataset_digest")
    if pinned is not None and (not isinstance(pinned, str) or not _BLAKE3.fullmatch(pinned)):
        raise InvalidPolicyError(
            f'{where}.dataset_digest: "blake3:<64 lowercase hex>", the dataset artifact\'s digest'
        )
    return Evaluation(
        thresholds,
        source=source,
        dataset=_dataset_ref(where, table["dataset"]),
        dataset_digest=pinned,
        profile=str(profile),
        min_workers=_count(where, table, "min_workers", 1, 1, MAX_WORKERS),
        min_samples=_count(where, table, "min_samples", 1, 1),
        drift=drift,
    )
