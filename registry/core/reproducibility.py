"""Reproducibility: the canonical output encoding, the ``reproducibility/v1`` predicate,
and the verdict over many workers' attestations.

Canonical output encoding (ARCHITECTURE §7), the bytes whose blake3 is an output digest::

    b"reliquary.outputs.v1\\n"
    for each tensor, sorted by name:
        canonical JSON {"dtype": …, "name": …, "nbytes": n, "shape": […]} b"\\n"
        n bytes: the values, C order, little-endian

LLM outputs are tensors too: the token ids of prompt i are the int64 tensor
``tokens/<i:05d>`` of shape ``[len]``. So one encoding, one digest rule, and one
comparison serve every engine.

Invariants of a valid ``reproducibility/v1`` predicate (``validate_predicate``):
- ``runs`` lists at least ``MIN_RUNS`` runs; ``output`` is the first run's digest; ``agree`` is true
  exactly when every run produced the same digest (a statement cannot claim
  agreement its own runs contradict).
- ``values``, when present, is the decoded output of the first run, small enough to
  compare across profiles with a tolerance (bit equality is not expected there).

Verdict (``judge``): a profile is reproducible for an artifact only while no
attestation of that profile disagrees within its runs and all attestations carry
the same output digest. Any disagreement is a finding that stays: only a new
version can fix it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from registry.core.canonical import canonical_bytes
from registry.core.digest import Algorithm, Digest, is_hex64
from registry.core.errors import CoreError, InvalidStatementError

MAGIC = b"reliquary.outputs.v1\n"
MIN_RUNS = 2
MAX_VALUES = 4096  # decoded values carried in a predicate, for cross-profile comparison

_FORMATS: dict[str, str] = {
    "float16": "e",
    "float32": "f",
    "float64": "d",
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint8": "B",
    "uint16": "H",
    "uint32": "I",
    "uint64": "Q",
    "bool": "?",
}
DTYPES = frozenset(_FORMATS)


@dataclass(frozen=True, slots=True)
class Tensor:
    """One named output: its dtype (numpy name), shape and little-endian C-order bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes

    def __post_init__(self) -> None:
        if self.dtype not in _FORMATS:
            raise CoreError(
                f"output {self.name!r}: dtype {self.dtype!r} is not one of {sorted(DTYPES)}"
            )
        count = math.prod(self.shape)
        if len(self.data) != count * struct.calcsize("<" + _FORMATS[self.dtype]):
            raise CoreError(
                f"output {self.name!r}: {len(self.data)} bytes do not fit shape {self.shape}"
            )

    def values(self) -> list[float | int | bool]:
        fmt = _FORMATS[self.dtype]
        count = math.prod(self.shape)
        return list(struct.unpack(f"<{count}{fmt}", self.data))


def encode_outputs(tensors: Iterable[Tensor]) -> bytes:
    """The canonical encoding of a run's outputs. Raises CoreError on duplicate names."""
    ordered = sorted(tensors, key=lambda t: t.name)
    names = [t.name for t in ordered]
    if len(set(names)) != len(names):
        raise CoreError("output names must be unique")
    parts = [MAGIC]
    for t in ordered:
        header = {"dtype": t.dtype, "name": t.name, "nbytes": len(t.data), "shape": list(t.shape)}
        parts += [canonical_bytes(header), b"\n", t.data]
    return b"".join(parts)


def token_tensors(token_ids: Iterable[Iterable[int]]) -> list[Tensor]:
    """An LLM's outputs as tensors: one int64 tensor ``tokens/<i>`` per prompt."""
    out = []
    for i, ids in enumerate(token_ids):
        seq = [int(t) for t in ids]
        out.append(
            Tensor(f"tokens/{i:05d}", "int64", (len(seq),), struct.pack(f"<{len(seq)}q", *seq))
        )
    return out


def output_values(tensors: Iterable[Tensor]) -> dict[str, Any] | None:
    """Decoded values for the predicate, or None when there are more than MAX_VALUES."""
    tensors = list(tensors)
    if sum(math.prod(t.shape) for t in tensors) > MAX_VALUES:
        return None
    values: dict[str, Any] = {}
    for t in tensors:
        decoded = t.values()
        if any(isinstance(v, float) and not math.isfinite(v) for v in decoded):
            return None  # JSON has no NaN/inf; the digests still compare them bit for bit
        values[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "values": decoded}
    return values


# -- the predicate ------------------------------------------------------------------


def _problem(message: str) -> InvalidStatementError:
    return InvalidStatementError(f"reproducibility/v1 predicate: {message}")


def _blake3(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _problem(f"{where} must be a 'blake3:<hex>' digest string")
    try:
        digest = Digest.parse(value)
    except CoreError as exc:
        raise _problem(f"{where}: {exc}") from None
    if digest.algorithm is not Algorithm.BLAKE3:
        raise _problem(f"{where} must be a blake3 digest")
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


def validate_predicate(p: dict[str, Any]) -> None:
    """Raises InvalidStatementError naming the first field out of shape."""
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


def _fits(dtype: str, value: object) -> bool:
    if dtype == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if dtype.startswith("float"):
        return math.isfinite(value)
    return isinstance(value, int)


def _check_values(values: object) -> None:
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


# -- verdicts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """One accepted ``reproducibility/v1`` attestation, as the verdict sees it."""

    keyid: str  # the key that signed it (not what the predicate claims)
    output: str
    runs: tuple[str, ...]
    agree: bool
    values: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, keyid: str, predicate: Mapping[str, Any]) -> WorkerResult:
        values = predicate.get("values")
        return cls(
            keyid=keyid,
            output=str(predicate["output"]),
            runs=tuple(str(r["output"]) for r in predicate["runs"]),
            agree=bool(predicate["agree"]),
            values=values if isinstance(values, dict) else None,
        )


@dataclass(frozen=True, slots=True)
class ProfileVerdict:
    profile: str
    results: tuple[WorkerResult, ...] = ()
    refusals: tuple[str, ...] = ()  # an engine refused to run it deterministically

    @property
    def workers(self) -> frozenset[str]:
        return frozenset(r.keyid for r in self.results)

    @property
    def outputs(self) -> dict[str, str]:
        """Output digest -> the workers (short keyids) that produced it."""
        seen: dict[str, list[str]] = {}
        for r in self.results:
            seen.setdefault(r.output, []).append(r.keyid[:16])
        return {d: ", ".join(sorted(set(k))) for d, k in seen.items()}

    @property
    def finding(self) -> str | None:
        """Why this profile is non-reproducible, with the differing digests; None if it is not."""
        problems = [f"an engine refused to run it deterministically: {r}" for r in self.refusals]
        problems += [
            f"worker {r.keyid[:16]}…'s {len(r.runs)} runs disagree: " + ", ".join(r.runs)
            for r in self.results
            if not r.agree
        ]
        if len(self.outputs) > 1:
            problems.append(
                "workers disagree: "
                + "; ".join(f"{d} from {who}" for d, who in sorted(self.outputs.items()))
            )
        return "; ".join(problems) or None

    @property
    def agreeing_workers(self) -> int:
        return 0 if self.finding is not None else len(self.workers)

    @property
    def output(self) -> str | None:
        """The one output digest every worker agreed on."""
        return self.results[0].output if self.results and self.finding is None else None


def judge(
    profile: str, results: Iterable[WorkerResult], refusals: Iterable[str] = ()
) -> ProfileVerdict:
    return ProfileVerdict(profile, tuple(results), tuple(refusals))


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How close two profiles' outputs must be: floats by max abs diff, integers by agreement."""

    max_abs_diff: float = 0.0
    min_token_agreement: float = 1.0


def compare(a: ProfileVerdict, b: ProfileVerdict, tolerance: Tolerance) -> tuple[bool, str]:
    """Compare two reproducible profiles' agreed outputs within ``tolerance``; (ok, why)."""
    if a.output is None or b.output is None:
        missing = a.profile if a.output is None else b.profile
        return False, f"{missing} has no agreed output yet"
    if a.output == b.output:
        return True, f"{a.profile} and {b.profile} are bit-identical ({a.output})"
    va, vb = a.results[0].values, b.results[0].values
    if va is None or vb is None:
        return False, "outputs differ and are too large to compare with a tolerance"
    if sorted(va) != sorted(vb):
        return False, f"outputs differ in names: {sorted(va)[:5]} vs {sorted(vb)[:5]}"
    max_diff, same, total = 0.0, 0, 0
    for name in sorted(va):
        ta, tb = va[name], vb[name]
        tokens = name.startswith("tokens/") and not ta["dtype"].startswith("float")
        if ta["dtype"] != tb["dtype"] or (ta["shape"] != tb["shape"] and not tokens):
            return False, (
                f"output {name!r} is {ta['dtype']}{ta['shape']} vs {tb['dtype']}{tb['shape']}"
            )
        if ta["dtype"].startswith("float"):
            max_diff = max(
                [max_diff, *(abs(x - y) for x, y in zip(ta["values"], tb["values"], strict=True))]
            )
        else:
            longest = max(len(ta["values"]), len(tb["values"]))
            same += sum(x == y for x, y in zip(ta["values"], tb["values"], strict=False))
            total += longest
    agreement = same / total if total else 1.0
    ok = max_diff <= tolerance.max_abs_diff and agreement >= tolerance.min_token_agreement
    return ok, (
        f"{a.profile} vs {b.profile}: max abs diff {max_diff:.3g} (allowed {tolerance.max_abs_diff:g}), "
        f"token agreement {agreement:.4f} (needed {tolerance.min_token_agreement:g})"
    )
