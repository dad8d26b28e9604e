"""Reliquary's attestation predicates: one frozen, self-validating type per predicate type.

Invariants:
- A predicate object is valid: its constructor checks every field and raises
  ``InvalidStatementError`` naming the first one out of shape (``<type>/v1 predicate:
  ...``), and its JSON form has a canonical encoding. Nothing downstream re-checks.
  ``from_json`` checks and encodes the JSON it reads (the same checks) and builds the
  object without checking it again (``settled``): a statement is checked once.
- ``predicate_from_json`` parses a statement's ``predicate`` once; ``to_json()`` gives
  back the same JSON object. Unknown fields are kept (``extra``, also inside nested
  objects) and emitted again, so the canonical statement bytes, hence digests and
  signatures, survive a round trip; except in ``approval/v1``: an approval means
  exactly what this version understands, so an unknown (perhaps restricting) field is
  refused, not ignored.
- ``reproducibility/v1``: at least ``MIN_RUNS`` runs; ``output`` is the first run's
  digest; ``agree`` is true exactly when every run produced the same digest (a
  statement cannot claim agreement its own runs contradict); ``values``, when present,
  is the decoded output of the first run (at most ``MAX_VALUES`` numbers), small enough
  to compare across profiles with a tolerance.
- ``SIGNING_ROLES``: which key roles may sign which predicate type; the registry and
  offline verification apply this one rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar

from registry.core.canonical import canonical_bytes
from registry.core.digest import Algorithm, Digest, is_hex64
from registry.core.errors import CoreError, InvalidStatementError
from registry.core.manifest import validate_name
from registry.core.outputs import DTYPES, MAX_VALUES
from registry.core.roles import Role

PREDICATE_BASE = "https://reliquary.dev/attestation/"
PUBLISH = PREDICATE_BASE + "publish/v1"
REPRODUCIBILITY = PREDICATE_BASE + "reproducibility/v1"
EVALUATION = PREDICATE_BASE + "evaluation/v1"
APPROVAL = PREDICATE_BASE + "approval/v1"
MIN_RUNS = 2

Scalar = str | int | float | bool | None
Number = int | float
Extra = Mapping[str, Any]
"""Fields this version does not know, kept verbatim (JSON values)."""


def short_name(predicate_type: str) -> str:
    """``publish/v1`` for the full predicate URI (other strings unchanged)."""
    return predicate_type.removeprefix(PREDICATE_BASE)


def _fail(predicate_type: str, problem: str) -> InvalidStatementError:
    return InvalidStatementError(f"{short_name(predicate_type)} predicate: {problem}")


def _rest(doc: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in known}


def _settle(
    predicate_type: str,
    doc: dict[str, Any],
    check: Callable[[dict[str, Any]], None],
    extras: tuple[tuple[Extra, frozenset[str]], ...],
) -> None:
    """Validate a predicate's JSON form: ``check``, then a canonical encoding exists.

    ``extras`` pairs each kept-unknown mapping with the fields its object knows: an
    unknown field may not shadow a known one (the JSON form would be ambiguous)."""
    for extra, known in extras:
        shadowed = sorted(set(extra) & known)
        if shadowed:
            raise _fail(predicate_type, f"unknown fields shadow known ones: {shadowed}")
    check(doc)
    try:
        canonical_bytes(doc)
    except CoreError as exc:
        raise InvalidStatementError(f"predicate: {exc}") from None


def _string(p: Mapping[str, Any], key: str, kind: str, *, required: bool) -> None:
    if key not in p:
        if required:
            raise _fail(kind, f"{key!r} is required")
        return
    if not isinstance(p[key], str) or not p[key]:
        raise _fail(kind, f"{key!r} must be a non-empty string")


# -- publish/v1 -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """The source a model was trained from: a repository and a commit in it."""

    repository: str
    commit: str
    extra: Extra = field(default_factory=dict, hash=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset({"repository", "commit"})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Source:
        return cls(doc["repository"], doc["commit"], _rest(doc, cls.KNOWN))

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "repository": self.repository, "commit": self.commit}


@dataclass(frozen=True, slots=True)
class PublishPredicate:
    """``publish/v1``: the publisher vouches for the artifact (and where it came from)."""

    publisher: str
    source: Source | None = None
    training_run: str | None = None
    extra: Extra = field(default_factory=dict, hash=False)
    settled: InitVar[bool] = False  # only from_json: it settled the JSON it read already

    TYPE: ClassVar[str] = PUBLISH
    SIGNERS: ClassVar[frozenset[Role]] = frozenset({Role.PUBLISHER})
    KNOWN: ClassVar[frozenset[str]] = frozenset({"publisher", "source", "training_run"})

    def __post_init__(self, settled: bool) -> None:
        if settled:
            return
        extras: tuple[tuple[Extra, frozenset[str]], ...] = ((self.extra, self.KNOWN),)
        if self.source is not None:
            extras += ((self.source.extra, Source.KNOWN),)
        _settle(PUBLISH, self.to_json(), _check_publish, extras)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PublishPredicate:
        """Raises InvalidStatementError: a field missing or of the wrong type."""
        _settle(PUBLISH, doc, _check_publish, ())  # the JSON as read: checked and encoded once
        source = doc.get("source")
        return cls(
            publisher=doc["publisher"],
            source=None if source is None else Source.from_json(source),
            training_run=doc.get("training_run"),
            extra=_rest(doc, cls.KNOWN),
            settled=True,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "publisher": self.publisher}
        if self.source is not None:
            out["source"] = self.source.to_json()
        if self.training_run is not None:
            out["training_run"] = self.training_run
        return out


def _check_publish(p: dict[str, Any]) -> None:
    _string(p, "publisher", PUBLISH, required=True)
    _string(p, "training_run", PUBLISH, required=False)
    if "source" in p:
        source = p["source"]
        if not isinstance(source, dict):
            raise _fail(PUBLISH, "'source' must be an object with repository and commit")
        _string(source, "repository", PUBLISH, required=True)
        _string(source, "commit", PUBLISH, required=True)


# -- evaluation/v1 ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Predictions:
    """What a worker predicted over a whole dataset: how many, and the digest of their
    canonical encoding (``registry.core.outputs``), which two workers must agree on."""

    count: int
    digest: Digest
    extra: Extra = field(default_factory=dict, hash=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset({"count", "digest"})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Predictions:
        return cls(doc["count"], Digest.parse(doc["digest"]), _rest(doc, cls.KNOWN))

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "count": self.count, "digest": str(self.digest)}


@dataclass(frozen=True, slots=True)
class Drift:
    """The comparison with the artifact a channel held, on the same dataset: that
    artifact's predictions digest and metrics, and how far predictions moved."""

    against: Digest  # the artifact the channel held (blake3)
    predictions: Digest  # its predictions digest on the same dataset
    metrics: Mapping[str, Number] = field(hash=False)  # its metrics on the same dataset
    mean_abs_diff: Number  # mean |new - old| over every predicted value
    max_abs_diff: Number
    moved: Number  # share (0..1) of samples with a value that moved by more than tolerance
    tolerance: Number
    extra: Extra = field(default_factory=dict, hash=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset(
        {"against", "predictions", "metrics", "mean_abs_diff", "max_abs_diff", "moved", "tolerance"}
    )

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Drift:
        return cls(
            against=Digest.parse(doc["against"]),
            predictions=Digest.parse(doc["predictions"]),
            metrics=dict(doc["metrics"]),
            mean_abs_diff=doc["mean_abs_diff"],
            max_abs_diff=doc["max_abs_diff"],
            moved=doc["moved"],
            tolerance=doc["tolerance"],
            extra=_rest(doc, cls.KNOWN),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "against": str(self.against),
            "predictions": str(self.predictions),
            "metrics": dict(self.metrics),
            "mean_abs_diff": self.mean_abs_diff,
            "max_abs_diff": self.max_abs_diff,
            "moved": self.moved,
            "tolerance": self.tolerance,
        }


@dataclass(frozen=True, slots=True)
class EvaluationPredicate:
    """``evaluation/v1``: metrics measured on a dataset, optionally with thresholds.

    A publisher's statement may carry only ``metrics`` (and ``dataset``, ``thresholds``).
    A worker's measured statement (``measured``) carries all of ``profile``, ``samples``,
    ``predictions``, ``worker`` and ``dataset``, and its prediction count equals the
    sample count: a statement cannot claim a measurement its own counts contradict."""

    metrics: Mapping[str, Number] = field(hash=False)
    dataset: Digest | None = None  # a blake3 digest: the dataset artifact's identity
    thresholds: Mapping[str, str] | None = field(default=None, hash=False)
    samples: int | None = None
    predictions: Predictions | None = None
    profile: str | None = None
    engine: Engine | None = None
    device: str | None = None
    host: Host | None = None
    determinism: Mapping[str, Scalar] | None = field(default=None, hash=False)
    worker: str | None = None  # the keyid of the worker that measured it
    job: str | None = None  # the evaluation job this statement completes
    channel: str | None = None  # whose policy named the dataset and thresholds
    drift: Drift | None = None
    timings: Mapping[str, Number] | None = field(default=None, hash=False)
    extra: Extra = field(default_factory=dict, hash=False)
    settled: InitVar[bool] = False  # only from_json: it settled the JSON it read already

    TYPE: ClassVar[str] = EVALUATION
    SIGNERS: ClassVar[frozenset[Role]] = frozenset({Role.PUBLISHER, Role.WORKER})
    KNOWN: ClassVar[frozenset[str]] = frozenset(
        {
            "metrics",
            "dataset",
            "thresholds",
            "samples",
            "predictions",
            "profile",
            "engine",
            "device",
            "host",
            "determinism",
            "worker",
            "job",
            "channel",
            "drift",
            "timings",
        }
    )
    MEASURED: ClassVar[tuple[str, ...]] = ("profile", "samples", "predictions", "worker", "dataset")

    def __post_init__(self, settled: bool) -> None:
        if settled:
            return
        extras: tuple[tuple[Extra, frozenset[str]], ...] = ((self.extra, self.KNOWN),)
        if self.predictions is not None:
            extras += ((self.predictions.extra, Predictions.KNOWN),)
        if self.drift is not None:
            extras += ((self.drift.extra, Drift.KNOWN),)
        if self.engine is not None:
            extras += ((self.engine.extra, Engine.KNOWN),)
        if self.host is not None:
            extras += ((self.host.extra, Host.KNOWN),)
        _settle(EVALUATION, self.to_json(), _check_evaluation, extras)

    @property
    def measured(self) -> bool:
        """A worker measured it (every ``MEASURED`` field is present; checked on parse)."""
        return self.predictions is not None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EvaluationPredicate:
        """Raises InvalidStatementError: a field missing or of the wrong type."""
        _settle(
            EVALUATION, doc, _check_evaluation, ()
        )  # the JSON as read: checked and encoded once

        def opt(key: str, parse: Callable[[Any], Any]) -> Any:
            return parse(doc[key]) if key in doc else None

        return cls(
            metrics=dict(doc["metrics"]),
            dataset=opt("dataset", Digest.parse),
            thresholds=opt("thresholds", dict),
            samples=doc.get("samples"),
            predictions=opt("predictions", Predictions.from_json),
            profile=doc.get("profile"),
            engine=opt("engine", Engine.from_json),
            device=doc.get("device"),
            host=opt("host", Host.from_json),
            determinism=opt("determinism", dict),
            worker=doc.get("worker"),
            job=doc.get("job"),
            channel=doc.get("channel"),
            drift=opt("drift", Drift.from_json),
            timings=opt("timings", dict),
            extra=_rest(doc, cls.KNOWN),
            settled=True,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "metrics": dict(self.metrics)}
        if self.dataset is not None:
            out["dataset"] = str(self.dataset)
        if self.thresholds is not None:
            out["thresholds"] = dict(self.thresholds)
        for key in ("samples", "profile", "device", "worker", "job", "channel"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        for key in ("predictions", "engine", "host", "drift"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.to_json()
        for key in ("determinism", "timings"):
            value = getattr(self, key)
            if value is not None:
                out[key] = dict(value)
        return out


def _eval_fail(problem: str) -> InvalidStatementError:
    return _fail(EVALUATION, problem)


def _eval_blake3(value: object, where: str) -> None:
    _blake3(value, where, EVALUATION)


def _finite_numbers(value: object, where: str, *, empty: bool = True, item: str = "") -> None:
    if not isinstance(value, dict) or (not empty and not value):
        raise _eval_fail(
            f"{where!r} must be a{'' if empty else ' non-empty'} object of name -> number"
        )
    for name, number in value.items():
        if not _number(number):
            raise _eval_fail(f"{item or where} {name[:100]!r} must be a finite number")


def _scalar_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, str | int | float | bool) or v is None for v in value.values()
    )


def _count(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _eval_fail(f"{where} must be an integer >= 0")
    return value


def _check_evaluation(p: dict[str, Any]) -> None:
    _finite_numbers(p.get("metrics"), "metrics", empty=False, item="metric")
    if "dataset" in p:
        _eval_blake3(p["dataset"], "'dataset'")
    if "thresholds" in p:
        thresholds = p["thresholds"]
        if not isinstance(thresholds, dict) or not all(
            isinstance(v, str) for v in thresholds.values()
        ):
            raise _eval_fail("'thresholds' must be an object of metric name -> string")
    for key in ("profile", "device", "job", "channel"):
        if key in p and (not isinstance(p[key], str) or not p[key]):
            raise _eval_fail(f"{key!r} must be a non-empty string")
    if "worker" in p and not (isinstance(p["worker"], str) and is_hex64(p["worker"])):
        raise _eval_fail("'worker' must be the worker's keyid (64 lowercase hex)")
    if "engine" in p and not (
        isinstance(p["engine"], dict)
        and all(isinstance(p["engine"].get(k), str) and p["engine"][k] for k in ("name", "version"))
    ):
        raise _eval_fail("'engine' must be an object with name and version")
    if "host" in p and not (
        isinstance(p["host"], dict)
        and all(isinstance(p["host"].get(k), str) and p["host"][k] for k in ("cpu", "os", "python"))
    ):
        raise _eval_fail("'host' must be an object (cpu, os, python, libraries)")
    if "host" in p and not _scalar_map(p["host"].get("libraries", {})):
        raise _eval_fail(
            "'host.libraries' must be an object of name -> string, number, bool or null"
        )
    if "determinism" in p and not _scalar_map(p["determinism"]):
        raise _eval_fail("'determinism' must be an object of name -> string, number, bool or null")
    if "timings" in p:
        _finite_numbers(p["timings"], "timings")
    present = [k for k in EvaluationPredicate.MEASURED if k in p]
    if {"samples", "predictions", "profile"} & set(present) and len(present) != len(
        EvaluationPredicate.MEASURED
    ):
        missing = sorted(set(EvaluationPredicate.MEASURED) - set(present))
        raise _eval_fail(
            f"a measured evaluation carries {', '.join(EvaluationPredicate.MEASURED)}; "
            f"missing: {', '.join(missing)}"
        )
    if "samples" in p:
        samples = _count(p["samples"], "'samples'")
        predictions = p["predictions"]
        if not isinstance(predictions, dict):
            raise _eval_fail("'predictions' must be an object {count, digest}")
        count = _count(predictions.get("count"), "predictions.count")
        _eval_blake3(predictions.get("digest"), "predictions.digest")
        if count != samples:
            raise _eval_fail(
                f"predictions.count {count} differs from samples {samples}: every sample is "
                "predicted exactly once"
            )
    if "drift" in p:
        _check_drift(p["drift"])


def _check_drift(drift: object) -> None:
    if not isinstance(drift, dict):
        raise _eval_fail("'drift' must be an object")
    _eval_blake3(drift.get("against"), "drift.against")
    _eval_blake3(drift.get("predictions"), "drift.predictions")
    _finite_numbers(drift.get("metrics"), "drift.metrics")
    for key in ("mean_abs_diff", "max_abs_diff", "tolerance", "moved"):
        if not _number(drift.get(key)) or drift[key] < 0:
            raise _eval_fail(f"drift.{key} must be a number >= 0")
    if drift["moved"] > 1:
        raise _eval_fail("drift.moved is a share of samples, 0..1")


# -- approval/v1 ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalPredicate:
    """``approval/v1``: a governor approves the artifact for one channel. No extra fields."""

    channel: str
    comment: str | None = None
    settled: InitVar[bool] = False  # only from_json: it settled the JSON it read already

    TYPE: ClassVar[str] = APPROVAL
    SIGNERS: ClassVar[frozenset[Role]] = frozenset({Role.GOVERNOR})

    def __post_init__(self, settled: bool) -> None:
        if settled:
            return
        _settle(APPROVAL, self.to_json(), _check_approval, ())

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ApprovalPredicate:
        """Raises InvalidStatementError: an unknown field, or one of the wrong type."""
        _settle(APPROVAL, doc, _check_approval, ())  # the JSON as read: checked and encoded once
        return cls(channel=doc["channel"], comment=doc.get("comment"), settled=True)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"channel": self.channel}
        if self.comment is not None:
            out["comment"] = self.comment
        return out


def _check_approval(p: dict[str, Any]) -> None:
    unknown = sorted(set(p) - {"channel", "comment"})
    if unknown:
        raise _fail(
            APPROVAL,
            f"unknown field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}; "
            "an approval may carry only channel and comment",
        )
    channel = p.get("channel")
    if not isinstance(channel, str) or "/" in channel or validate_name(channel):
        raise _fail(APPROVAL, "'channel' must be one name segment [a-z0-9][a-z0-9._-]*")
    if "comment" in p and not isinstance(p["comment"], str):
        raise _fail(APPROVAL, "'comment' must be a string")


# -- reproducibility/v1 -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Engine:
    name: str
    version: str
    extra: Extra = field(default_factory=dict, hash=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset({"name", "version"})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Engine:
        return cls(doc["name"], doc["version"], _rest(doc, cls.KNOWN))

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "name": self.name, "version": self.version}


@dataclass(frozen=True, slots=True)
class Host:
    """The host fingerprint: CPU, OS, Python and (optionally) library versions."""

    cpu: str
    os: str
    python: str
    libraries: Mapping[str, Scalar] | None = field(default=None, hash=False)
    extra: Extra = field(default_factory=dict, hash=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset({"cpu", "os", "python", "libraries"})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Host:
        libraries = doc.get("libraries")
        return cls(
            cpu=doc["cpu"],
            os=doc["os"],
            python=doc["python"],
            libraries=None if libraries is None else dict(libraries),
            extra=_rest(doc, cls.KNOWN),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "cpu": self.cpu, "os": self.os, "python": self.python}
        if self.libraries is not None:
            out["libraries"] = dict(self.libraries)
        return out


@dataclass(frozen=True, slots=True)
class Run:
    """One run in a fresh process: the digest of its canonical outputs, and its time."""

    output: Digest
    seconds: Number
    extra: Extra = field(default_factory=dict, hash=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset({"output", "seconds"})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Run:
        return cls(Digest.parse(doc["output"]), doc["seconds"], _rest(doc, cls.KNOWN))

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "output": str(self.output), "seconds": self.seconds}


@dataclass(frozen=True, slots=True)
class TensorValues:
    """One output's decoded values, C order (see ``registry.core.outputs``)."""

    dtype: str
    shape: tuple[int, ...]
    values: tuple[Scalar, ...]
    extra: Extra = field(default_factory=dict, hash=False)

    KNOWN: ClassVar[frozenset[str]] = frozenset({"dtype", "shape", "values"})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TensorValues:
        return cls(doc["dtype"], tuple(doc["shape"]), tuple(doc["values"]), _rest(doc, cls.KNOWN))

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "values": list(self.values),
        }


def values_from_json(values: object) -> dict[str, TensorValues]:
    """A predicate's ``values`` (output name -> {dtype, shape, values}).

    Raises:
        InvalidStatementError: out of shape, or more than ``MAX_VALUES`` numbers.
    """
    return {name: TensorValues.from_json(t) for name, t in _check_values(values).items()}


@dataclass(frozen=True, slots=True)
class ReproducibilityPredicate:
    """``reproducibility/v1``: what a worker observed running the reference inputs R times."""

    profile: str
    engine: Engine
    device: str
    host: Host
    determinism: Mapping[str, Scalar] = field(hash=False)
    inputs: Digest  # the reference-inputs artifact (blake3)
    runs: tuple[Run, ...]
    output: Digest  # the first run's output digest
    agree: bool  # every run produced the same digest
    worker: str  # the keyid of the worker that ran them
    timings: Mapping[str, Number] | None = field(default=None, hash=False)
    values: Mapping[str, TensorValues] | None = field(default=None, hash=False)
    job: str | None = None  # the job this statement completes, if any
    extra: Extra = field(default_factory=dict, hash=False)
    settled: InitVar[bool] = False  # only from_json: it settled the JSON it read already

    TYPE: ClassVar[str] = REPRODUCIBILITY
    SIGNERS: ClassVar[frozenset[Role]] = frozenset({Role.WORKER})
    KNOWN: ClassVar[frozenset[str]] = frozenset(
        {
            "profile",
            "engine",
            "device",
            "host",
            "determinism",
            "inputs",
            "runs",
            "output",
            "agree",
            "timings",
            "worker",
            "values",
            "job",
        }
    )

    def __post_init__(self, settled: bool) -> None:
        if settled:
            return
        extras = (
            (self.extra, self.KNOWN),
            (self.engine.extra, Engine.KNOWN),
            (self.host.extra, Host.KNOWN),
            *((r.extra, Run.KNOWN) for r in self.runs),
            *((t.extra, TensorValues.KNOWN) for t in (self.values or {}).values()),
        )
        _settle(REPRODUCIBILITY, self.to_json(), _check_reproducibility, extras)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ReproducibilityPredicate:
        """Raises InvalidStatementError naming the first field out of shape."""
        _settle(
            REPRODUCIBILITY, doc, _check_reproducibility, ()
        )  # the JSON as read: checked and encoded once
        timings = doc.get("timings")
        return cls(
            profile=doc["profile"],
            engine=Engine.from_json(doc["engine"]),
            device=doc["device"],
            host=Host.from_json(doc["host"]),
            determinism=dict(doc["determinism"]),
            inputs=Digest.parse(doc["inputs"]),
            runs=tuple(Run.from_json(r) for r in doc["runs"]),
            output=Digest.parse(doc["output"]),
            agree=doc["agree"],
            worker=doc["worker"],
            timings=None if timings is None else dict(timings),
            values=values_from_json(doc["values"]) if "values" in doc else None,
            job=doc.get("job"),
            extra=_rest(doc, cls.KNOWN),
            settled=True,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.extra,
            "profile": self.profile,
            "engine": self.engine.to_json(),
            "device": self.device,
            "host": self.host.to_json(),
            "determinism": dict(self.determinism),
            "inputs": str(self.inputs),
            "runs": [r.to_json() for r in self.runs],
            "output": str(self.output),
            "agree": self.agree,
            "worker": self.worker,
        }
        if self.timings is not None:
            out["timings"] = dict(self.timings)
        if self.values is not None:
            out["values"] = {name: t.to_json() for name, t in self.values.items()}
        if self.job is not None:
            out["job"] = self.job
        return out


def _problem(message: str) -> InvalidStatementError:
    return _fail(REPRODUCIBILITY, message)


def _blake3(value: object, where: str, predicate_type: str = REPRODUCIBILITY) -> str:
    """``value`` if it is a ``blake3:<hex>`` digest string, else the predicate's error."""
    if not isinstance(value, str):
        raise _fail(predicate_type, f"{where} must be a 'blake3:<hex>' digest string")
    try:
        digest = Digest.parse(value)
    except CoreError as exc:
        raise _fail(predicate_type, f"{where}: {exc}") from None
    if digest.algorithm is not Algorithm.BLAKE3:
        raise _fail(predicate_type, f"{where} must be a blake3 digest")
    return value


def _text(p: Mapping[str, Any], key: str, where: str = "") -> str:
    value = p.get(key)
    if not isinstance(value, str) or not value:
        raise _problem(f"{where}{key!r} must be a non-empty string")
    return value


def _scalars(value: object, where: str) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(v, str | int | float | bool) or v is None for v in value.values()
    ):
        raise _problem(f"{where!r} must be an object of name -> string, number, bool or null")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_reproducibility(p: dict[str, Any]) -> None:
    _text(p, "profile")
    engine = p.get("engine")
    if not isinstance(engine, dict):
        raise _problem("'engine' must be an object with name and version")
    _text(engine, "name", "engine.")
    _text(engine, "version", "engine.")
    _text(p, "device")
    host = p.get("host")
    if not isinstance(host, dict):
        raise _problem("'host' must be an object (cpu, os, python, libraries)")
    for key in ("cpu", "os", "python"):
        _text(host, key, "host.")
    _scalars(host.get("libraries", {}), "host.libraries")
    _scalars(p.get("determinism"), "determinism")
    _blake3(p.get("inputs"), "'inputs'")
    runs = p.get("runs")
    if not isinstance(runs, list) or len(runs) < MIN_RUNS:
        raise _problem(
            f"'runs' must list at least {MIN_RUNS} runs of {{output, seconds}}: one run "
            "cannot show that a fresh process reproduces it"
        )
    outputs = []
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            raise _problem(f"runs[{i}] must be an object")
        outputs.append(_blake3(run.get("output"), f"runs[{i}].output"))
        if not _number(run.get("seconds")) or run["seconds"] < 0:
            raise _problem(f"runs[{i}].seconds must be a number >= 0")
    if _blake3(p.get("output"), "'output'") != outputs[0]:
        raise _problem("'output' must be the first run's output digest")
    if not isinstance(p.get("agree"), bool):
        raise _problem("'agree' must be true or false")
    if p["agree"] != (len(set(outputs)) == 1):
        raise _problem("'agree' contradicts the runs' output digests")
    timings = p.get("timings", {})
    if not isinstance(timings, dict) or not all(_number(v) for v in timings.values()):
        raise _problem("'timings' must be an object of name -> seconds")
    worker = p.get("worker")
    if not isinstance(worker, str) or not is_hex64(worker):
        raise _problem("'worker' must be the worker's keyid (64 lowercase hex)")
    if "values" in p:
        _check_values(p["values"])
    if "job" in p and not isinstance(p["job"], str):
        raise _problem("'job' must be a string (the id of the job it completes)")


def _fits(dtype: str, value: object) -> bool:
    if dtype == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if dtype.startswith("float"):
        return math.isfinite(value)
    return isinstance(value, int)


def _check_values(values: object) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise _problem("'values' must be an object of output name -> {dtype, shape, values}")
    total = 0
    for name, tensor in values.items():
        if (
            not isinstance(tensor, dict)
            or tensor.get("dtype") not in DTYPES
            or not isinstance(tensor.get("shape"), list)
            or not all(isinstance(d, int) and d >= 0 for d in tensor["shape"])
            or not isinstance(tensor.get("values"), list)
            or len(tensor["values"]) != math.prod(tensor["shape"])
            or not all(_fits(tensor["dtype"], v) for v in tensor["values"])
        ):
            raise _problem(
                f"values[{name[:60]!r}] must be {{dtype, shape, values}} that agree, with "
                "values of the dtype"
            )
        total += len(tensor["values"])
    if total > MAX_VALUES:
        raise _problem(f"'values' carries more than {MAX_VALUES} numbers")
    return values


# -- all of them ------------------------------------------------------------------

Predicate = PublishPredicate | EvaluationPredicate | ApprovalPredicate | ReproducibilityPredicate
"""A valid predicate of a type this version knows (``Predicate.TYPE`` is its URI)."""

PREDICATE_CLASSES: dict[str, type[Predicate]] = {
    cls.TYPE: cls
    for cls in (PublishPredicate, EvaluationPredicate, ApprovalPredicate, ReproducibilityPredicate)
}
PREDICATE_TYPES = frozenset(PREDICATE_CLASSES)
SIGNING_ROLES: dict[str, frozenset[Role]] = {t: cls.SIGNERS for t, cls in PREDICATE_CLASSES.items()}
"""Predicate type -> the key roles whose signature may make it."""


def predicate_from_json(predicate_type: str, doc: object) -> Predicate:
    """Parse a statement's ``predicate`` as the type ``predicate_type`` names.

    Raises:
        InvalidStatementError: unknown predicate type, not a JSON object, a field
            missing or of the wrong type, or no canonical JSON form.
    """
    cls = PREDICATE_CLASSES.get(predicate_type)
    if cls is None:
        raise InvalidStatementError(
            f"unknown predicateType {predicate_type[:200]!r}; expected one of "
            f"{', '.join(sorted(PREDICATE_TYPES))}"
        )
    if not isinstance(doc, dict):
        raise InvalidStatementError("predicate must be a JSON object")
    return cls.from_json(doc)
