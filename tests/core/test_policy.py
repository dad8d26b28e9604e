from __future__ import annotations

import pytest

from registry.core.policy import Facts, InvalidPolicyError, evaluate, parse_policy
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
