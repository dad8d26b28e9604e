"""in-toto Statement v1 carrying Reliquary's attestation predicates.

Invariants of a ``Statement``:
- ``_type`` is ``https://in-toto.io/Statement/v1``; no other top-level fields.
- at least one subject; each is ``{"name": "<artifact name>@<version>",
  "digest": {...}}`` whose digest carries both ``blake3`` and ``sha256`` as 64
  lowercase hex (both digests of the manifest bytes). Other digest algorithms
  are accepted when their value is a string, and dropped: only blake3 and
  sha256 identify a Reliquary artifact. Other subject fields are refused.
- ``predicateType`` is one of ``PREDICATE_TYPES`` and ``predicate`` is a JSON
  object of that type's shape (``validate_predicate``) with a canonical form.
  Unknown predicate fields are kept for forward compatibility, except in
  ``approval/v1``: an approval means exactly what this version understands,
  so an unknown (perhaps restricting) field is refused, not ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from registry.core import reproducibility
from registry.core.canonical import canonical_bytes, loads_strict
from registry.core.digest import Algorithm, BlobDigests, Digest, is_hex64
from registry.core.errors import CoreError, InvalidStatementError
from registry.core.manifest import validate_name, validate_version

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_BASE = "https://reliquary.dev/attestation/"
PUBLISH = PREDICATE_BASE + "publish/v1"
REPRODUCIBILITY = PREDICATE_BASE + "reproducibility/v1"
EVALUATION = PREDICATE_BASE + "evaluation/v1"
APPROVAL = PREDICATE_BASE + "approval/v1"
PREDICATE_TYPES = frozenset({PUBLISH, REPRODUCIBILITY, EVALUATION, APPROVAL})

_STATEMENT_FIELDS = frozenset({"_type", "subject", "predicateType", "predicate"})
_SUBJECT_FIELDS = frozenset({"name", "digest"})


@dataclass(frozen=True, slots=True)
class Subject:
    """An artifact version named by both digests of its manifest bytes."""

    name: str
    blake3: str
    sha256: str

    def __post_init__(self) -> None:
        artifact, at, version = self.name.rpartition("@")
        problems = validate_name(artifact) + validate_version(version) if at else []
        if not at or problems:
            raise InvalidStatementError(
                f"subject name {self.name[:300]!r} must be '<artifact name>@<version>'"
                + (f": {problems[0]}" if problems else "")
            )
        for alg, hex_part in (("blake3", self.blake3), ("sha256", self.sha256)):
            if not is_hex64(hex_part):
                raise InvalidStatementError(
                    f"subject {self.name!r}: digest {alg} must be 64 lowercase hex characters"
                )


@dataclass(frozen=True, slots=True)
class Statement:
    """A valid in-toto Statement v1 with a known Reliquary predicate."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        if not self.subjects:
            raise InvalidStatementError("statement must have at least one subject")
        validate_predicate(self.predicate_type, self.predicate)

    @classmethod
    def from_payload(cls, payload: bytes) -> Statement:
        """Parse a DSSE payload as a Statement.

        Raises:
            InvalidStatementError: not strict JSON, or any invariant above broken.
        """
        try:
            doc = loads_strict(payload)
        except CoreError as exc:
            raise InvalidStatementError(f"statement is not strict JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidStatementError("statement must be a JSON object")
        _check_fields(doc, _STATEMENT_FIELDS, "statement")
        if doc["_type"] != STATEMENT_TYPE:
            raise InvalidStatementError(
                f"statement _type must be {STATEMENT_TYPE!r}, got {str(doc['_type'])[:100]!r}"
            )
        subjects = doc["subject"]
        if not isinstance(subjects, list) or not subjects:
            raise InvalidStatementError("statement subject must be a non-empty list")
        predicate_type = doc["predicateType"]
        if not isinstance(predicate_type, str):
            raise InvalidStatementError("statement predicateType must be a string")
        return cls(
            subjects=tuple(_parse_subject(s, i) for i, s in enumerate(subjects)),
            predicate_type=predicate_type,
            predicate=doc["predicate"],
        )

    def to_payload(self) -> bytes:
        """RFC 8785 canonical JSON, the bytes to sign."""
        return canonical_bytes(
            {
                "_type": STATEMENT_TYPE,
                "subject": [
                    {"name": s.name, "digest": {"blake3": s.blake3, "sha256": s.sha256}}
                    for s in self.subjects
                ],
                "predicateType": self.predicate_type,
                "predicate": self.predicate,
            }
        )

    def names(self, blake3_hex: str, sha256_hex: str) -> bool:
        """True when some subject carries exactly both of these digests."""
        return any(s.blake3 == blake3_hex and s.sha256 == sha256_hex for s in self.subjects)


def statement_for(
    name: str,
    version: str,
    manifest_digests: BlobDigests,
    predicate_type: str,
    predicate: dict[str, Any],
) -> Statement:
    """The statement about artifact ``name@version`` whose manifest has these digests.

    Raises:
        InvalidStatementError: bad name or version, unknown predicate type, or
            a predicate of the wrong shape.
    """
    subject = Subject(
        name=f"{name}@{version}",
        blake3=manifest_digests.blake3.hex,
        sha256=manifest_digests.sha256.hex,
    )
    return Statement(subjects=(subject,), predicate_type=predicate_type, predicate=predicate)


def _check_fields(doc: dict[str, Any], fields: frozenset[str], where: str) -> None:
    unknown = sorted(set(doc) - fields)
    if unknown:
        raise InvalidStatementError(
            f"{where} has unknown field(s) {', '.join(repr(k[:40]) for k in unknown[:5])}"
        )
    missing = sorted(fields - set(doc))
    if missing:
        raise InvalidStatementError(f"{where} is missing {', '.join(missing)}")


def _parse_subject(entry: object, index: int) -> Subject:
    where = f"subject[{index}]"
    if not isinstance(entry, dict):
        raise InvalidStatementError(f"{where} must be an object with name and digest")
    _check_fields(entry, _SUBJECT_FIELDS, where)
    name, digest = entry["name"], entry["digest"]
    if not isinstance(name, str):
        raise InvalidStatementError(f"{where}.name must be a string")
    if not isinstance(digest, dict) or not all(isinstance(v, str) for v in digest.values()):
        raise InvalidStatementError(f"{where}.digest must map algorithm names to hex strings")
    missing = [alg for alg in ("blake3", "sha256") if alg not in digest]
    if missing:
        raise InvalidStatementError(
            f"{where}.digest must carry both blake3 and sha256 of the manifest; "
            f"missing {', '.join(missing)}"
        )
    return Subject(name=name, blake3=digest["blake3"], sha256=digest["sha256"])


# -- predicates ---------------------------------------------------------------


def validate_predicate(predicate_type: str, predicate: object) -> None:
    """Check ``predicate`` has the shape ``predicate_type`` defines.

    Raises:
        InvalidStatementError: unknown predicate type, not a JSON object, no
            canonical JSON form, or a field missing or of the wrong type.
    """
    if predicate_type not in PREDICATE_TYPES:
        raise InvalidStatementError(
            f"unknown predicateType {predicate_type[:200]!r}; expected one of "
            f"{', '.join(sorted(PREDICATE_TYPES))}"
        )
    if not isinstance(predicate, dict):
        raise InvalidStatementError("predicate must be a JSON object")
    _VALIDATORS[predicate_type](predicate)
    try:
        canonical_bytes(predicate)
    except CoreError as exc:
        raise InvalidStatementError(f"predicate: {exc}") from None


def _fail(predicate_type: str, problem: str) -> InvalidStatementError:
    short = predicate_type.removeprefix(PREDICATE_BASE)
    return InvalidStatementError(f"{short} predicate: {problem}")


def _string(p: dict[str, Any], key: str, kind: str, *, required: bool) -> None:
    if key not in p:
        if required:
            raise _fail(kind, f"{key!r} is required")
        return
    if not isinstance(p[key], str) or not p[key]:
        raise _fail(kind, f"{key!r} must be a non-empty string")


def _validate_publish(p: dict[str, Any]) -> None:
    _string(p, "publisher", PUBLISH, required=True)
    _string(p, "training_run", PUBLISH, required=False)
    if "source" in p:
        source = p["source"]
        if not isinstance(source, dict):
            raise _fail(PUBLISH, "'source' must be an object with repository and commit")
        _string(source, "repository", PUBLISH, required=True)
        _string(source, "commit", PUBLISH, required=True)


def _validate_evaluation(p: dict[str, Any]) -> None:
    metrics = p.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise _fail(EVALUATION, "'metrics' must be a non-empty object of name -> number")
    for name, value in metrics.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise _fail(EVALUATION, f"metric {name[:100]!r} must be a finite number")
    if "dataset" in p:
        dataset = p["dataset"]
        if not isinstance(dataset, str):
            raise _fail(EVALUATION, "'dataset' must be a 'blake3:<hex>' digest string")
        try:
            digest = Digest.parse(dataset)
        except CoreError as exc:
            raise _fail(EVALUATION, f"'dataset': {exc}") from None
        if digest.algorithm is not Algorithm.BLAKE3:
            raise _fail(EVALUATION, "'dataset' must be a blake3 digest (the artifact identity)")
    if "thresholds" in p:
        thresholds = p["thresholds"]
        if not isinstance(thresholds, dict) or not all(
            isinstance(v, str) for v in thresholds.values()
        ):
            raise _fail(EVALUATION, "'thresholds' must be an object of metric name -> string")


def _validate_approval(p: dict[str, Any]) -> None:
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


_VALIDATORS: dict[str, Callable[[dict[str, Any]], None]] = {
    PUBLISH: _validate_publish,
    EVALUATION: _validate_evaluation,
    APPROVAL: _validate_approval,
    REPRODUCIBILITY: reproducibility.validate_predicate,
}
