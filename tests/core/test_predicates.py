"""Predicates: parsed once into valid typed objects, rendered back to the same bytes.

A statement signed by an older or newer client must keep its digest and signature
through the registry (unknown fields kept), and each shape this version refuses is
refused with a message naming the field, whether it came as JSON or was built in code.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, get_args

import pytest

from registry.core.canonical import canonical_bytes
from registry.core.digest import Digest
from registry.core.errors import InvalidStatementError
from registry.core.intoto import STATEMENT_TYPE, Statement, statement_for
from registry.core.predicates import (
    APPROVAL,
    EVALUATION,
    PREDICATE_TYPES,
    PUBLISH,
    REPRODUCIBILITY,
    SIGNING_ROLES,
    ApprovalPredicate,
    EvaluationPredicate,
    PublishPredicate,
    ReproducibilityPredicate,
    Run,
    Source,
    predicate_from_json,
    short_name,
)
from registry.core.roles import KEY_ROLES, KeyRoleName, Role
from tests.support.content import digests
from tests.support.trust import reproducibility

D = "blake3:" + "ab" * 32
E = "blake3:" + "cd" * 32
S = "sha256:" + "ab" * 32
KEYID = "ab" * 32


def repro(**changes: Any) -> dict[str, Any]:
    """A valid reproducibility/v1 predicate as JSON, with ``changes``."""
    return {**reproducibility(KEYID, [D, D]).to_json(), **changes}


VALID: list[tuple[str, dict[str, Any]]] = [
    (PUBLISH, {"publisher": "ci"}),
    (PUBLISH, {"publisher": "ci", "training_run": "run-7", "future_field": [1]}),
    (
        PUBLISH,
        {"publisher": "ci", "source": {"repository": "r", "commit": "c", "branch": "main"}},
    ),
    (EVALUATION, {"metrics": {"r2": 0.91, "n": 1000}}),
    (EVALUATION, {"metrics": {"r2": 0.91}, "dataset": D, "thresholds": {"r2": ">=0.9"}}),
    (EVALUATION, {"metrics": {"r2": 1}, "seed": None}),
    (APPROVAL, {"channel": "production"}),
    (APPROVAL, {"channel": "canary-1.eu", "comment": "looks good"}),
    (REPRODUCIBILITY, reproducibility(KEYID, [D, D, D]).to_json()),
    (REPRODUCIBILITY, reproducibility(KEYID, [D, E]).to_json()),
    (REPRODUCIBILITY, repro(job="j-1", future={"x": [1, 2]})),
    (
        REPRODUCIBILITY,
        repro(
            engine={"name": "vllm", "version": "0.11", "build": "cu12"},
            host={"cpu": "c", "os": "o", "python": "3", "machine": "x86_64"},  # no libraries
            runs=[{"output": D, "seconds": 0, "rss_mb": 12}, {"output": D, "seconds": 1.5}],
            values={"y": {"dtype": "float32", "shape": [2], "values": [1.0, 2], "unit": "m"}},
        ),
    ),
]


@pytest.mark.parametrize(("predicate_type", "doc"), VALID)
def test_a_parsed_predicate_renders_back_to_the_same_canonical_bytes(
    predicate_type: str, doc: dict[str, Any]
) -> None:
    predicate = predicate_from_json(predicate_type, doc)
    assert predicate_type == predicate.TYPE
    assert predicate.to_json() == doc
    assert canonical_bytes(predicate.to_json()) == canonical_bytes(doc)
    assert predicate_from_json(predicate_type, predicate.to_json()) == predicate


@pytest.mark.parametrize(("predicate_type", "doc"), VALID)
def test_a_signed_statement_keeps_its_bytes_through_parsing(
    predicate_type: str, doc: dict[str, Any]
) -> None:
    d = digests(b"m")
    payload = canonical_bytes(
        {
            "_type": STATEMENT_TYPE,
            "subject": [
                {"name": "a/b@1", "digest": {"blake3": d.blake3.hex, "sha256": d.sha256.hex}}
            ],
            "predicateType": predicate_type,
            "predicate": doc,
        }
    )
    statement = Statement.from_payload(payload)
    assert statement.predicate_type == predicate_type
    assert statement.to_payload() == payload
    assert statement_for("a/b", "1", d, statement.predicate) == statement


def test_predicates_built_in_code_are_the_parsed_ones() -> None:
    assert predicate_from_json(
        PUBLISH, {"publisher": "ci", "source": {"repository": "r", "commit": "c"}}
    ) == (PublishPredicate("ci", Source("r", "c")))
    assert predicate_from_json(EVALUATION, {"metrics": {"r2": 0.9}, "dataset": D}) == (
        EvaluationPredicate({"r2": 0.9}, dataset=Digest.parse(D))
    )
    assert predicate_from_json(APPROVAL, {"channel": "production"}) == ApprovalPredicate(
        "production"
    )
    built = reproducibility(KEYID, [D, E], job="j-1")
    assert isinstance(built, ReproducibilityPredicate)
    assert (built.output, built.agree, built.job) == (Digest.parse(D), False, "j-1")
    assert [str(r.output) for r in built.runs] == [D, E]


INVALID: list[tuple[str, object, str]] = [
    (PUBLISH, {}, "publish/v1 predicate: 'publisher' is required"),
    (PUBLISH, {"publisher": ""}, "publish/v1 predicate: 'publisher' must be a non-empty string"),
    (PUBLISH, {"publisher": "ci", "source": {"repository": "r"}}, "'commit' is required"),
    (PUBLISH, {"publisher": "ci", "source": "git"}, "'source' must be an object"),
    (PUBLISH, {"publisher": "ci", "training_run": 7}, "'training_run'"),
    (EVALUATION, {"metrics": {}}, "evaluation/v1 predicate: 'metrics' must be a non-empty object"),
    (EVALUATION, {"metrics": {"r2": "0.9"}}, "metric 'r2' must be a finite number"),
    (EVALUATION, {"metrics": {"ok": True}}, "finite number"),
    (EVALUATION, {"metrics": {"r2": float("nan")}}, "finite number"),
    (EVALUATION, {"metrics": {"r2": 1}, "dataset": S}, "must be a blake3 digest"),
    (EVALUATION, {"metrics": {"r2": 1}, "dataset": "blake3:xyz"}, "'dataset': digest hex"),
    (EVALUATION, {"metrics": {"r2": 1}, "thresholds": {"r2": 0.9}}, "'thresholds' must be"),
    (
        EVALUATION,
        {"metrics": {"r2": 1}, "host": {"cpu": "c", "os": "o", "python": "3", "libraries": 5}},
        "'host.libraries' must be an object",
    ),
    (
        EVALUATION,
        {"metrics": {"r2": 1}, "samples": 3, "profile": "cpu-tensorflow"},
        "missing: dataset, predictions, worker",
    ),
    (APPROVAL, {}, "approval/v1 predicate: 'channel' must be one name segment"),
    (APPROVAL, {"channel": "Prod"}, "'channel'"),
    (APPROVAL, {"channel": "prod/eu"}, "'channel'"),
    (APPROVAL, {"channel": "prod", "comment": 1}, "'comment' must be a string"),
    (
        APPROVAL,
        {"channel": "prod", "expires": "2027-01-01"},
        "approval/v1 predicate: unknown field(s) 'expires'; an approval may carry only "
        "channel and comment",
    ),
    (REPRODUCIBILITY, {"anything": {"goes": True}}, "'profile' must be a non-empty string"),
    (REPRODUCIBILITY, repro(engine="tf"), "'engine' must be an object"),
    (REPRODUCIBILITY, repro(host={"cpu": "c"}, device=""), "'device'"),
    (REPRODUCIBILITY, repro(host={"cpu": "c"}), "host.'os' must be a non-empty string"),
    (REPRODUCIBILITY, repro(determinism=None), "'determinism' must be an object"),
    (REPRODUCIBILITY, repro(inputs=S), "'inputs' must be a blake3 digest"),
    (REPRODUCIBILITY, repro(timings={"x": 2**64}), "predicate: value has no canonical JSON"),
    (REPRODUCIBILITY, repro(runs=[]), "'runs' must list at least 2 runs"),
    (REPRODUCIBILITY, repro(runs=[{"output": D, "seconds": 1}]), "at least 2 runs"),
    (REPRODUCIBILITY, repro(runs=[{"output": D, "seconds": -1}] * 2), "runs[0].seconds"),
    (REPRODUCIBILITY, repro(agree=False), "'agree' contradicts the runs' output digests"),
    (REPRODUCIBILITY, repro(agree="yes"), "'agree' must be true or false"),
    (REPRODUCIBILITY, repro(worker="AB" * 32), "'worker' must be the worker's keyid"),
    (REPRODUCIBILITY, repro(output=E), "'output' must be the first run's output digest"),
    (REPRODUCIBILITY, repro(runs=[{"output": S, "seconds": 1}] * 2, output=S), "blake3"),
    (REPRODUCIBILITY, repro(job=7), "'job' must be a string"),
    (
        REPRODUCIBILITY,
        repro(values={"y": {"dtype": "float32", "shape": [1], "values": ["x"]}}),
        "values['y'] must be {dtype, shape, values} that agree, with values of the dtype",
    ),
    (
        REPRODUCIBILITY,
        repro(values={"y": {"dtype": "int8", "shape": [4097], "values": [0] * 4097}}),
        "'values' carries more than 4096 numbers",
    ),
    (PUBLISH, [1], "predicate must be a JSON object"),
    ("https://reliquary.dev/attestation/unknown/v1", {}, "unknown predicateType"),
]


@pytest.mark.parametrize(("predicate_type", "doc", "message"), INVALID)
def test_each_invalid_shape_is_refused_naming_the_field(
    predicate_type: str, doc: object, message: str
) -> None:
    with pytest.raises(InvalidStatementError) as info:
        predicate_from_json(predicate_type, doc)
    assert message in str(info.value)
    if isinstance(doc, dict) and predicate_type in PREDICATE_TYPES:
        assert str(info.value).startswith(
            (f"{short_name(predicate_type)} predicate: ", "predicate: ")
        )


def test_a_statement_with_an_invalid_predicate_is_refused() -> None:
    d = digests(b"m")
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "a/b@1", "digest": {"blake3": d.blake3.hex, "sha256": d.sha256.hex}}],
        "predicateType": APPROVAL,
        "predicate": {"channel": "prod", "until": "never"},
    }
    with pytest.raises(InvalidStatementError, match="unknown field"):
        Statement.from_payload(json.dumps(doc).encode())


def test_constructors_refuse_what_parsing_refuses() -> None:
    with pytest.raises(InvalidStatementError, match="'publisher' must be a non-empty string"):
        PublishPredicate("")
    with pytest.raises(InvalidStatementError, match="'repository' must be a non-empty string"):
        PublishPredicate("ci", Source("", "c"))
    with pytest.raises(InvalidStatementError, match="'metrics' must be a non-empty object"):
        EvaluationPredicate({})
    with pytest.raises(InvalidStatementError, match="must be a blake3 digest"):
        EvaluationPredicate({"r2": 1.0}, dataset=Digest.parse(S))
    with pytest.raises(InvalidStatementError, match="'channel' must be one name segment"):
        ApprovalPredicate("Production")
    good = reproducibility(KEYID, [D, D])
    with pytest.raises(InvalidStatementError, match="'agree' contradicts"):
        dataclasses.replace(good, agree=False)
    with pytest.raises(InvalidStatementError, match="at least 2 runs"):
        dataclasses.replace(good, runs=(Run(Digest.parse(D), 1),))
    with pytest.raises(InvalidStatementError, match="shadow known ones"):
        PublishPredicate("ci", extra={"publisher": "someone else"})


def test_which_key_roles_may_sign_which_predicate() -> None:
    assert {
        PUBLISH: {Role.PUBLISHER},
        EVALUATION: {Role.PUBLISHER, Role.WORKER},
        APPROVAL: {Role.GOVERNOR},
        REPRODUCIBILITY: {Role.WORKER},
    } == SIGNING_ROLES
    assert set().union(*SIGNING_ROLES.values()) == KEY_ROLES
    assert set(get_args(KeyRoleName)) == {r.value for r in KEY_ROLES}
