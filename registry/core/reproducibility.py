"""Reproducibility verdicts over many workers' ``reproducibility/v1`` attestations.

Verdict (``judge``): a profile is reproducible for an artifact only while no
attestation of that profile disagrees within its runs and all attestations carry
the same output digest. Any disagreement is a finding that stays: only a new
version can fix it. Two reproducible profiles are compared within a ``Tolerance``
(``compare``), on the decoded values their predicates carry.

The output encoding lives in ``registry.core.outputs``, the predicate in
``registry.core.predicates``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from registry.core.predicates import ReproducibilityPredicate, TensorValues


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """One accepted ``reproducibility/v1`` attestation, as the verdict sees it."""

    keyid: str  # the key that signed it (not what the predicate claims)
    output: str
    runs: tuple[str, ...]
    agree: bool
    values: Mapping[str, TensorValues] | None = None

    @classmethod
    def of(cls, keyid: str, predicate: ReproducibilityPredicate) -> WorkerResult:
        return cls(
            keyid=keyid,
            output=str(predicate.output),
            runs=tuple(str(r.output) for r in predicate.runs),
            agree=predicate.agree,
            values=predicate.values,
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
        problems = [
            f"an engine refused to run it deterministically: {r}"
            for r in dict.fromkeys(self.refusals)  # each reason once, however many workers
        ]
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
        tokens = name.startswith("tokens/") and not ta.dtype.startswith("float")
        if ta.dtype != tb.dtype or (ta.shape != tb.shape and not tokens):
            return False, (
                f"output {name!r} is {ta.dtype}{list(ta.shape)} vs {tb.dtype}{list(tb.shape)}"
            )
        if ta.dtype.startswith("float"):
            max_diff = max([max_diff, *(abs(x - y) for x, y in _numbers(ta, tb))])
        else:
            longest = max(len(ta.values), len(tb.values))
            same += sum(x == y for x, y in zip(ta.values, tb.values, strict=False))
            total += longest
    agreement = same / total if total else 1.0
    ok = max_diff <= tolerance.max_abs_diff and agreement >= tolerance.min_token_agreement
    return ok, (
        f"{a.profile} vs {b.profile}: max abs diff {max_diff:.3g} (allowed {tolerance.max_abs_diff:g}), "
        f"token agreement {agreement:.4f} (needed {tolerance.min_token_agreement:g})"
    )


def _numbers(a: TensorValues, b: TensorValues) -> list[tuple[float, float]]:
    """Pairs of float values (their dtype and shape agree, so their lengths do)."""
    return [
        (float(x), float(y))
        for x, y in zip(a.values, b.values, strict=True)
        if isinstance(x, int | float) and isinstance(y, int | float)
    ]
