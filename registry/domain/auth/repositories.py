"""Token rows: lookups by secret hash, inserts and revocation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.db.models import TokenRow


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_secret_hash(self, secret_sha256: str) -> TokenRow | None:
        return self.session.scalar(select(TokenRow).where(TokenRow.secret_sha256 == secret_sha256))

    def by_id(self, token_id: str) -> TokenRow | None:
        return self.session.get(TokenRow, token_id)

    def add(self, row: TokenRow) -> None:
        self.session.add(row)
        self.session.flush()

    def revoke(self, token_id: str, at: datetime) -> bool:
        """Mark revoked; False when no such token. Revoking twice keeps the first time."""
        result = self.session.execute(
            update(TokenRow)
            .where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return True
        return self.session.get(TokenRow, token_id) is not None

    def list(self) -> list[TokenRow]:
        return list(self.session.scalars(select(TokenRow).order_by(TokenRow.created_at)))
