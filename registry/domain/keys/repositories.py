"""Signing-key rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import SigningKeyRow


class KeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, keyid: str) -> SigningKeyRow | None:
        return self.session.get(SigningKeyRow, keyid)

    def add(self, row: SigningKeyRow) -> None:
        self.session.add(row)
        self.session.flush()

    def list(self, role: str | None = None) -> list[SigningKeyRow]:
        query = select(SigningKeyRow).order_by(SigningKeyRow.created_at, SigningKeyRow.keyid)
        if role is not None:
            query = query.where(SigningKeyRow.role == role)
        return list(self.session.scalars(query))
