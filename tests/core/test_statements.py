"""in-toto Statements v1: subjects name a manifest by both digests; fields are checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry.core.canonical import canonical_bytes
from registry.core.errors import InvalidStatementError
from registry.core.intoto import STATEMENT_TYPE, Statement, Subject
from registry.core.predicates import PUBLISH
from tests.support.content import digests
from tests.support.trust import EXAMPLE_MANIFEST, example_statement


def test_statement_for_names_the_manifest() -> None:
    d = digests(EXAMPLE_MANIFEST)
    statement = example_statement()
    assert statement.subjects == (
        Subject("veid/trust-score@v20261122_093000", d.blake3.hex, d.sha256.hex),
    )
    assert statement.names(d.blake3.hex, d.sha256.hex)
    other = digests(EXAMPLE_MANIFEST + b" ")
    assert not statement.names(other.blake3.hex, d.sha256.hex)
    assert not statement.names(d.blake3.hex, other.sha256.hex)


def test_statement_round_trips_as_canonical_json() -> None:
    statement = example_statement()
    payload = statement.to_payload()
    doc = json.loads(payload)
    assert doc["_type"] == STATEMENT_TYPE
    assert set(doc) == {"_type", "subject", "predicateType", "predicate"}
    assert doc["subject"][0]["digest"] == {
        "blake3": statement.subjects[0].blake3,
        "sha256": statement.subjects[0].sha256,
    }
    assert payload == canonical_bytes(doc)
    assert Statement.from_payload(payload) == statement


def _statement_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(example_statement().to_payload())
    doc.update(changes)
    return doc


def _bad_statement(doc: object, match: str) -> None:
    with pytest.raises(InvalidStatementError, match=match):
        Statement.from_payload(json.dumps(doc).encode())


def test_subjects_must_carry_both_digests() -> None:
    subject = _statement_doc()["subject"][0]
    only_sha = dict(subject, digest={"sha256": subject["digest"]["sha256"]})
    _bad_statement(_statement_doc(subject=[only_sha]), "missing blake3")
    upper = dict(
        subject, digest=dict(subject["digest"], blake3=subject["digest"]["blake3"].upper())
    )
    _bad_statement(_statement_doc(subject=[upper]), "64 lowercase hex")
    _bad_statement(_statement_doc(subject=[]), "non-empty list")
    _bad_statement(_statement_doc(subject=[dict(subject, uri="x")]), "unknown field")
    _bad_statement(_statement_doc(subject=[dict(subject, name="no-version")]), "@<version>")
    _bad_statement(_statement_doc(subject=[dict(subject, name="Bad Name@v1")]), "segment")
    extra = dict(subject, digest=dict(subject["digest"], sha512="ab" * 64))
    parsed = Statement.from_payload(json.dumps(_statement_doc(subject=[extra])).encode())
    assert parsed == example_statement()


def test_statement_envelope_fields_are_checked() -> None:
    _bad_statement(_statement_doc(_type="https://in-toto.io/Statement/v0.1"), "_type")
    _bad_statement(
        _statement_doc(predicateType=PUBLISH.replace("v1", "v9")), "unknown predicateType"
    )
    _bad_statement(_statement_doc(predicate=[1]), "JSON object")
    _bad_statement(_statement_doc(extra=True), "unknown field")
    doc = _statement_doc()
    del doc["predicate"]
    _bad_statement(doc, "missing predicate")
    with pytest.raises(InvalidStatementError, match="strict JSON"):
        Statement.from_payload(b'{"_type":1,"_type":2}')
