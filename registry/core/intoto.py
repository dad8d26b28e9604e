"""in-toto Statement v1 carrying Reliquary's attestation predicates.

Invariants of a ``Statement``:
- ``_type`` is ``https://in-toto.io/Statement/v1``; no other top-level fields.
- at least one subject; each is ``{"name": "<artifact name>@<version>",
  "digest": {...}}`` whose digest carries both ``blake3`` and ``sha256`` as 64
  lowercase hex (both digests of the manifest bytes). Other digest algorithms
  are accepted when their value is a string, and dropped: only blake3 and
  sha256 identify a Reliquary artifact. Other subject fields are refused.
- ``predicate`` is a valid predicate of a type this version knows
  (``registry.core.predicates``), parsed once; ``predicateType`` is its type.
  Its JSON form is the one parsed (unknown fields kept, see there), so
  ``to_payload`` of a parsed statement signs the same canonical bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registry.core.canonical import canonical_bytes, loads_strict
from registry.core.digest import BlobDigests, is_hex64
from registry.core.errors import CoreError, InvalidStatementError
from registry.core.manifest import validate_name, validate_version
from registry.core.predicates import Predicate, predicate_from_json

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

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
    predicate: Predicate = field(hash=False)

    def __post_init__(self) -> None:
        if not self.subjects:
            raise InvalidStatementError("statement must have at least one subject")

    @property
    def predicate_type(self) -> str:
        """The ``predicateType`` URI: the predicate's own type."""
        return self.predicate.TYPE

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
            predicate=predicate_from_json(predicate_type, doc["predicate"]),
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
                "predicate": self.predicate.to_json(),
            }
        )

    def names(self, blake3_hex: str, sha256_hex: str) -> bool:
        """True when some subject carries exactly both of these digests."""
        return any(s.blake3 == blake3_hex and s.sha256 == sha256_hex for s in self.subjects)


def statement_for(
    name: str,
    version: str,
    manifest_digests: BlobDigests,
    predicate: Predicate,
) -> Statement:
    """The statement about artifact ``name@version`` whose manifest has these digests.

    Raises:
        InvalidStatementError: bad name or version.
    """
    subject = Subject(
        name=f"{name}@{version}",
        blake3=manifest_digests.blake3.hex,
        sha256=manifest_digests.sha256.hex,
    )
    return Statement(subjects=(subject,), predicate=predicate)


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
