"""Bearer tokens: issue, authenticate, revoke.

Invariants: a token's secret is never stored, only its SHA-256; an expired or
revoked token authenticates nobody; every token has exactly one role.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from registry.core.roles import Role
from registry.db.models import TokenRow
from registry.domain.auth.repositories import TokenRepository
from registry.domain.auth.schemas import IssuedToken, Principal, Token
from registry.errors import AuthenticationRequiredError, InvalidRequestError, TokenNotFoundError

TOKEN_PREFIX = "rlq_"  # noqa: S105 (a public prefix)
MAX_TOKEN_CHARS = 256


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _to_dto(row: TokenRow) -> Token:
    return Token(
        id=row.id,
        role=Role(row.role),
        description=row.description,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class TokenService:
    def __init__(self, writes: sessionmaker[Session], reads: sessionmaker[Session]) -> None:
        self._writes = writes
        self._reads = reads

    def issue(
        self, role: Role, description: str = "", expires_in_seconds: float | None = None
    ) -> IssuedToken:
        """Create a token; the returned secret is the only copy that will ever exist."""
        if len(description) > 255:
            raise InvalidRequestError("description must be at most 255 characters")
        if expires_in_seconds is not None and expires_in_seconds <= 0:
            raise InvalidRequestError("expiry must be in the future")
        now = datetime.now(UTC)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(
            id=secrets.token_hex(8),
            secret_sha256=_secret_hash(secret),
            role=role.value,
            description=description,
            created_at=now,
            expires_at=None
            if expires_in_seconds is None
            else now + timedelta(seconds=expires_in_seconds),
            revoked_at=None,
        )
        with self._writes.begin() as session:
            TokenRepository(session).add(row)
        dto = _to_dto(row)
        return IssuedToken(**{f: getattr(dto, f) for f in dto.__struct_fields__}, token=secret)

    def authenticate(self, secret: str) -> Principal:
        """The principal a presented token stands for.

        Raises:
            AuthenticationRequiredError: unknown, expired or revoked token.
        """
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_TOKEN_CHARS:
            raise AuthenticationRequiredError(
                "the bearer token is malformed: tokens start with 'rlq_'; "
                "create one with `reliquary-server token create --role ...`"
            )
        with self._reads() as session:
            row = TokenRepository(session).by_secret_hash(_secret_hash(secret))
        now = datetime.now(UTC)
        if row is None:
            raise AuthenticationRequiredError("the bearer token is not known to this registry")
        if row.revoked_at is not None:
            raise AuthenticationRequiredError(
                f"token {row.id} was revoked at {row.revoked_at.isoformat()}; ask an admin for a new one"
            )
        if row.expires_at is not None and row.expires_at <= now:
            raise AuthenticationRequiredError(
                f"token {row.id} expired at {row.expires_at.isoformat()}; ask an admin for a new one"
            )
        return Principal(token_id=row.id, role=Role(row.role))

    def revoke(self, token_id: str) -> None:
        """Revoke a token (idempotent).

        Raises:
            TokenNotFoundError: no token has this id.
        """
        with self._writes.begin() as session:
            if not TokenRepository(session).revoke(token_id, datetime.now(UTC)):
                raise TokenNotFoundError(f"no token with id {token_id!r}")

    def list(self) -> list[Token]:
        with self._reads() as session:
            return [_to_dto(r) for r in TokenRepository(session).list()]
