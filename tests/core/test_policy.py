from __future__ import annotations

import pytest

from registry.core.images import ImagePin
from registry.core.policy import (
    Facts,
    ImageArtifact,
    InvalidPolicyError,
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
