"""Attestation rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import AttestationRow


class AttestationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, envelope_sha256: str) -> AttestationRow | None:
        return self.session.get(AttestationRow, envelope_sha256)

    def of_artifact(self, digest_hex: str, predicate_type: str | None) -> list[AttestationRow]:
        query = select(AttestationRow).where(AttestationRow.artifact_digest == digest_hex)
        if predicate_type is not None:
            query = query.where(AttestationRow.predicate_type == predicate_type)
        return list(self.session.scalars(query.order_by(AttestationRow.log_index)))
