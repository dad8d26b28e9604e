from __future__ import annotations

import re

import pytest

from registry.core.evaluation import EvaluationVerdict, Measurement
from registry.core.evaluation_rules import DatasetRef
from registry.core.images import ImagePin
from registry.core.policy import (
    DatasetFacts,
    Facts,
    ImageArtifact,
    InvalidPolicyError,
    Requirement,
    RuntimeImage,
    evaluate,
    parse_policy,
)
from registry.core.reproducibility import WorkerResult, judge

TRUST_SCORE = b"""
[channels.production]
require_publisher_signature = true
evaluation = { r2 = ">=0.85", mae = "<=8.0", rmse = "<=10.0" }
evaluation_source = "attestation-or-manifest"
approvals = { role = "governor", min = 1 }
max_regression = { r2 = 0.02, mae = 0.5 }
reproducibility = [{ profile = "cpu-tensorflow", min_workers = 2 }]
"""


def by_name(facts: Facts) -> dict[str, bool]:
    rules = parse_policy(TRUST_SCORE).for_channel("production")
    return {r.name: r.met for r in evaluate(rules, facts)}


def test_the_trust_score_release_policy() -> None:
    good = Facts(
        publisher_keys=frozenset({"a" * 64}),
        attested_metrics={"r2": 0.91, "mae": 6.2, "rmse": 8.1},
        approval_keys=frozenset({"g" * 64}),
        current_metrics={"r2": 0.92, "mae": 6.0},
        reproducibility={
            "cpu-tensorflow": judge(
                "cpu-tensorflow",
                [
                    WorkerResult(k * 64, "blake3:" + "0" * 64, ("blake3:" + "0" * 64,), True)
                    for k in "wv"
                ],
            )
        },
    )
    assert all(by_name(good).values())
    regressed = Facts(
        publisher_keys=good.publisher_keys,
        attested_metrics={"r2": 0.89, "mae": 6.7, "rmse": 8.1},
        approval_keys=good.approval_keys,
        current_metrics=good.current_metrics,
        reproducibility=good.reproducibility,
    )
    result = by_name(regressed)
    assert result["max_regression.r2"] is False  # 0.92 -> 0.89 drops 0.03 > 0.02
    assert result["max_regression.mae"] is False  # lower is better: 6.0 -> 6.7 is 0.7 > 0.5
    assert result["evaluation.r2"] is True


def test_manifest_metrics_count_only_where_the_policy_allows() -> None:
    facts = Facts(manifest_metrics={"r2": 0.99, "mae": 1.0, "rmse": 1.0})
    assert by_name(facts)["evaluation.r2"] is True
    strict = parse_policy(TRUST_SCORE.replace(b'"attestation-or-manifest"', b'"attestation"'))
    met = {r.name: r.met for r in evaluate(strict.for_channel("production"), facts)}
    assert met["evaluation.r2"] is False
    assert met["approvals"] is False and met["reproducibility.cpu-tensorflow"] is False


def test_unnamed_channels_have_no_requirements_and_versions_track_bytes() -> None:
    policy = parse_policy(TRUST_SCORE)
    assert evaluate(policy.for_channel("staging"), Facts()) == []
    assert policy.version != parse_policy(TRUST_SCORE + b"\n").version


@pytest.mark.parametrize(
    "bad",
    [
        b'[channels.production]\nevaluation = { r2 = "about 0.8" }',
        b"[channels.production]\nmax_regression = { r2 = 0.1 }",  # no rule gives a direction
        b'[channels.production]\napprovals = { role = "publisher", min = 1 }',
        b"[channels.production]\nsurprise = 1",
        b"[channels.Production]\n",
        b"[other]\n",
        b"not toml = = 1",
        b'[channels.production]\nreproducibility = [{ profile = "x", min_workers = 0 }]',
    ],
)
def test_invalid_policies_are_refused(bad: bytes) -> None:
    with pytest.raises(InvalidPolicyError):
        parse_policy(bad)


# -- require_runtime_image ----------------------------------------------------------------

RUNTIME = b"""
[channels.production]
require_runtime_image = true
runtime_image_channel = "stable"
"""
PIN = ImagePin.parse("veid/runtime@sha256:" + "ab" * 32)
SIGNED = ImageArtifact("2.21", "blake3:" + "01" * 32, frozenset({"p" * 64}))
UNSIGNED = ImageArtifact("2.21-rc", "blake3:" + "02" * 32)


def runtime_requirements(facts: Facts) -> dict[str, tuple[bool, str]]:
    rules = parse_policy(RUNTIME).for_channel("production")
    return {r.name: (r.met, r.reason) for r in evaluate(rules, facts)}


def test_a_runtime_image_pinned_held_signed_and_on_the_named_channel_is_met() -> None:
    image = RuntimeImage(PIN, True, (SIGNED, UNSIGNED), channel_holds=SIGNED.digest)
    result = runtime_requirements(Facts(runtime_image=image))
    assert result == {
        "runtime_image": (True, f"pins {PIN}, held here"),
        "runtime_image.signature": (
            True,
            "veid/runtime@2.21 signed by publisher key " + "p" * 16 + "…",
        ),
        "runtime_image.channel": (
            True,
            f"veid/runtime:stable holds veid/runtime@2.21 ({SIGNED.digest})",
        ),
    }
    without_channel = parse_policy(RUNTIME.replace(b'runtime_image_channel = "stable"', b""))
    names = [
        r.name
        for r in evaluate(without_channel.for_channel("production"), Facts(runtime_image=image))
    ]
    assert names == ["runtime_image", "runtime_image.signature"]


def test_each_unmet_runtime_image_requirement_says_why() -> None:
    unpinned = runtime_requirements(Facts())
    assert {name: met for name, (met, _) in unpinned.items()} == {
        "runtime_image": False,
        "runtime_image.signature": False,
        "runtime_image.channel": False,
    }
    assert "pins no runtime image" in unpinned["runtime_image"][1]
    assert "--runtime image=NAME@sha256:<hex>" in unpinned["runtime_image"][1]

    absent = runtime_requirements(Facts(runtime_image=RuntimeImage(PIN)))
    assert not any(met for met, _ in absent.values())
    assert "holds no such image; push it first" in absent["runtime_image"][1]

    untagged = runtime_requirements(Facts(runtime_image=RuntimeImage(PIN, True)))
    assert untagged["runtime_image"][0] is True
    assert (
        "no image artifact veid/runtime@TAG wraps sha256:" in untagged["runtime_image.signature"][1]
    )
    assert untagged["runtime_image.channel"] == (
        False,
        f"veid/runtime has no channel 'stable': promote a tag of {PIN} there",
    )

    unsigned = runtime_requirements(
        Facts(
            runtime_image=RuntimeImage(PIN, True, (UNSIGNED,), channel_holds="blake3:" + "09" * 32)
        )
    )
    assert unsigned["runtime_image.signature"] == (
        False,
        "no accepted publish/v1 statement from a registered publisher key on veid/runtime@2.21-rc",
    )
    assert unsigned["runtime_image.channel"] == (
        False,
        f"veid/runtime:stable holds blake3:{'09' * 32}, not an artifact of {PIN}: "
        "promote veid/runtime@2.21-rc there",
    )

    revoked = ImageArtifact(SIGNED.tag, SIGNED.digest, SIGNED.publisher_keys, revoked=True)
    gone = runtime_requirements(
        Facts(runtime_image=RuntimeImage(PIN, True, (revoked,), channel_holds=SIGNED.digest))
    )
    assert gone["runtime_image.signature"] == (
        False,
        f"every image artifact of {PIN} was revoked (veid/runtime@2.21)",
    )
    assert gone["runtime_image.channel"][0] is False


def test_only_models_must_pin_a_runtime_image() -> None:
    for kind in ("image", "dataset", "reference-inputs"):
        result = runtime_requirements(Facts(kind=kind))
        assert result == {
            "runtime_image": (
                True,
                f"a {kind} artifact pins no runtime image: the requirement binds models",
            )
        }


@pytest.mark.parametrize(
    "bad",
    [
        b"[channels.production]\nrequire_runtime_image = 1",
        b'[channels.production]\nrequire_runtime_image = "yes"',
        b'[channels.production]\nruntime_image_channel = "stable"',  # without the requirement
        b'[channels.production]\nrequire_runtime_image = true\nruntime_image_channel = "Stable"',
        b"[channels.production]\nrequire_runtime_image = true\nruntime_image_channel = 3",
    ],
)
def test_invalid_runtime_image_rules_are_refused(bad: bytes) -> None:
    with pytest.raises(InvalidPolicyError) as info:
        parse_policy(bad)
    assert "runtime_image" in str(info.value)


# -- evaluation measured by workers (ARCHITECTURE §13) -------------------------------------

MEASURED = b"""
[channels.production]
max_regression = { r2 = 0.02 }

[channels.production.evaluation]
dataset = "veid/golden@v3"
profile = "cpu-tensorflow"
min_workers = 2
min_samples = 8
thresholds = { r2 = ">=0.85", mean_bias = "-2..2" }
drift = { tolerance = 1.0, max_moved = 0.25 }
"""
GOLDEN = DatasetFacts(DatasetRef("veid/golden", "v3"), "blake3:" + "d0" * 32, samples=8)
HELD, SUBJECT = "blake3:" + "01" * 32, "blake3:" + "02" * 32


def measurement(keyid: str, predictions: str = "p1", **fields: object) -> Measurement:
    values: dict[str, object] = {
        "keyid": keyid,
        "profile": "cpu-tensorflow",
        "dataset": GOLDEN.digest,
        "samples": 8,
        "predictions": predictions,
        "metrics": {"r2": 0.9, "mean_bias": 0.5},
        **fields,
    }
    return Measurement(**values)  # type: ignore[arg-type]


def measured_requirements(*measurements: Measurement, **facts: object) -> dict[str, Requirement]:
    rules = parse_policy(MEASURED).for_channel("production")
    verdict = EvaluationVerdict("cpu-tensorflow", tuple(measurements))
    base: dict[str, object] = {"subject": SUBJECT, "dataset": GOLDEN, "evaluation": verdict}
    return {r.name: r for r in evaluate(rules, Facts(**{**base, **facts}))}  # type: ignore[arg-type]


def test_the_worker_source_is_the_default_and_the_flat_form_means_publisher() -> None:
    measured = parse_policy(MEASURED).for_channel("production").evaluation
    assert measured is not None and measured.measured and measured.min_workers == 2
    assert measured.threshold_rules() == {"mean_bias": "-2..2", "r2": ">=0.85"}
    assert [str(d) for d in parse_policy(MEASURED).datasets] == ["veid/golden@v3"]
    flat = parse_policy(TRUST_SCORE).for_channel("production").evaluation
    assert flat is not None and flat.source == "publisher-or-manifest" and not flat.measured
    plain = b'[channels.p]\nevaluation = { r2 = ">=0.85" }'
    legacy = parse_policy(plain).for_channel("p").evaluation
    assert legacy is not None and legacy.source == "publisher"


def test_a_range_holds_at_both_ends_only() -> None:
    rules = parse_policy(MEASURED).for_channel("production").evaluation
    assert rules is not None
    bias = next(t for t in rules.thresholds if t.metric == "mean_bias")
    assert [bias.holds(v) for v in (-2.0, 0.0, 2.0, 2.5, -2.01)] == [True, True, True, False, False]
    assert str(bias) == "-2 <= mean_bias <= 2" and not bias.one_sided


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('thresholds = { r2 = ">=0.85" }', "needs dataset"),
        ('dataset = "golden", profile = "cpu-tensorflow", thresholds = {}', ".dataset"),
        ('dataset = "a/b@v1", profile = "gpu-magic", thresholds = {}', ".profile: one of"),
        ('dataset = "a/b@v1", profile = "cpu-tensorflow", thresholds = { bias = "<1" }', "bias"),
        ('dataset = "a/b@v1", profile = "cpu-tensorflow", thresholds = { r2 = "3..1" }', "low <="),
        (
            'dataset = "a/b@v1", profile = "cpu-tensorflow", min_workers = 0, thresholds = {}',
            "min_workers must be an integer >= 1",
        ),
        (
            'dataset = "a/b@v1", profile = "cpu-tensorflow", thresholds = {}, '
            "drift = { max_moved = 0.2 }",
            "tolerance required",
        ),
        (
            'dataset = "a/b@v1", profile = "cpu-tensorflow", thresholds = {}, '
            "drift = { tolerance = 1.0, max_moved = 2 }",
            "max_moved is a share",
        ),
        ('source = "publisher", dataset = "a/b@v1", thresholds = {}', "apply only to source"),
        ('source = "trainer", thresholds = {}', ".source: one of"),
        ('dataset = "a/b@v1", profile = ["cpu-tensorflow"], thresholds = {}', ".profile: one of"),
        (
            'dataset = "a/b@v1", profile = "cpu-tensorflow", thresholds = { r2 = ">=1e999" }',
            "names a number no float holds",
        ),
        (
            'dataset = "a/b@v1", profile = "cpu-tensorflow", min_workers = 100000000000000000, '
            "thresholds = {}",
            "min_workers must be an integer >= 1 and <= 16",
        ),
        (
            'dataset = "a/b@v1", profile = "cpu-tensorflow", thresholds = {}, '
            "drift = { tolerance = inf, max_moved = 0.1 }",
            "every value is a number >= 0",
        ),
        (
            'dataset = "a/b@v1", profile = "cpu-vllm", thresholds = {}, '
            "drift = { tolerance = 0.5, max_moved = 0.1 }",
            "the tolerance is 0",
        ),
        (
            'dataset = "a/b@v1", dataset_digest = "sha256:00", profile = "cpu-tensorflow", '
            "thresholds = {}",
            "dataset_digest",
        ),
        ("thresholds = {}, extra = 1", "unknown keys ['extra']"),
    ],
)
def test_each_bad_evaluation_is_named(table: str, named: str) -> None:
    with pytest.raises(InvalidPolicyError, match=re.escape(named)):
        parse_policy(f"[channels.production]\nevaluation = {{ {table} }}".encode())


def test_two_agreeing_workers_over_the_whole_dataset_meet_it() -> None:
    met = measured_requirements(measurement("k1"), measurement("k2"))
    assert {n: r.met for n, r in met.items()} == {
        "evaluation.dataset": True,
        "evaluation.workers": True,
        "evaluation.mean_bias": True,
        "evaluation.r2": True,
        "max_regression.r2": True,
    }
    partial = measured_requirements(measurement("k1", samples=4), measurement("k2", samples=4))
    assert not partial["evaluation.workers"].met
    assert "the dataset has 8" in partial["evaluation.workers"].reason


def test_drift_is_judged_on_enough_workers_that_compared_with_what_the_channel_holds_now() -> None:
    """A worker that compared with an older holder does not count for drift; once two
    workers (the policy's min_workers) compared with the current one, their figures do."""
    drift = {"moved": 0.5, "tolerance": 1.0, "mean_abs_diff": 1.0, "max_abs_diff": 3.0}
    old = measurement(
        "k1",
        baseline="blake3:" + "00" * 32,
        baseline_predictions="q0",
        moved=0.0,
        tolerance=1.0,
        mean_abs_diff=0.0,
        max_abs_diff=0.0,
    )
    now = [
        measurement(
            k, baseline=HELD, baseline_predictions="q1", baseline_metrics={"r2": 0.95}, **drift
        )
        for k in ("k1", "k2")
    ]
    one = measured_requirements(old, now[1], current=HELD)
    assert not one["evaluation.drift"].met
    assert "1 of 2 workers compared with " + HELD in one["evaluation.drift"].reason
    assert "reliquary verify REF --evaluate" in one["evaluation.drift"].reason
    # the holder has no measurement of its own, and too few compared with it: fail closed
    assert not one["max_regression.r2"].met
    assert "no measurement of it" in one["max_regression.r2"].reason
    met = measured_requirements(old, *now, current=HELD)
    assert met["evaluation.workers"].met  # k1 counted once per baseline, two keys agree
    assert not met["evaluation.drift"].met
    assert "50.0% of samples moved" in met["evaluation.drift"].reason
    assert not met["max_regression.r2"].met  # 0.9 against the holder's 0.95


def test_workers_with_the_same_predictions_must_report_the_same_figures() -> None:
    """Agreeing predictions are not enough: one key cannot pick the metrics the gate reads
    by posting first."""
    honest = measurement("k1")
    boastful = measurement("k2", metrics={"r2": 0.99, "mean_bias": 0.0})
    met = measured_requirements(honest, boastful)
    assert not met["evaluation.workers"].met
    assert "report different samples or metrics" in met["evaluation.workers"].reason
