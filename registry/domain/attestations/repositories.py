"""Attestation rows."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, inspect, select
from sqlalchemy.orm import Session

from registry.db.models import AttestationRow

# built once: on the accept path, constructing a statement costs more than running it
_GET = select(AttestationRow).where(AttestationRow.envelope_sha256 == bindparam("sha256"))
_OF_ARTIFACT = (
    select(AttestationRow)
    .where(AttestationRow.artifact_digest == bindparam("digest"))
    .order_by(AttestationRow.log_index)
)
_OF_STATEMENTS = select(AttestationRow).where(
    AttestationRow.statement_sha256.in_(bindparam("statements", expanding=True))
)
_OF_ARTIFACT_TYPED = _OF_ARTIFACT.where(AttestationRow.predicate_type == bindparam("type"))
_INSERT = insert(AttestationRow)
_COLUMNS = tuple(a.key for a in inspect(AttestationRow).column_attrs)


class AttestationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, envelope_sha256: str) -> AttestationRow | None:
        return self.session.scalar(_GET, {"sha256": envelope_sha256})

    def of_statements(self, statements: list[str]) -> AttestationRow | None:
        """The row of one of ``statements`` (``dsse.statement_sha256``), if any."""
        return self.session.scalars(_OF_STATEMENTS, {"statements": statements}).first()

    def add(self, row: AttestationRow) -> None:
        """Insert now (a Core insert: ``row`` stays a plain value, outside the session)."""
        self.session.connection().execute(_INSERT, {k: getattr(row, k) for k in _COLUMNS})

    def of_artifact(self, digest_hex: str, predicate_type: str | None) -> list[AttestationRow]:
        if predicate_type is None:
            return list(self.session.scalars(_OF_ARTIFACT, {"digest": digest_hex}))
        return list(
            self.session.scalars(_OF_ARTIFACT_TYPED, {"digest": digest_hex, "type": predicate_type})
        )
