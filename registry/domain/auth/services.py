"""Bearer tokens: issue, authenticate, revoke.

Invariants: a token's secret is never stored, only its SHA-256; an expired or
revoked token authenticates nobody; every token has exactly one role.

Valid tokens are cached in memory for ``cache_seconds`` (setting
``RELIQUARY_TOKEN_CACHE_TTL``, default 2s). A revocation through this process
takes effect at once; through another replica or the CLI, within that TTL.
Expiry is always checked against the clock, cached or not.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cachetools import TTLCache
from sqlalchemy.orm import Session, sessionmaker

from registry.core.clock import Clock, utc_now
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


@dataclass(frozen=True, slots=True)
class _CachedToken:
    principal: Principal
    expires_at: datetime | None


class TokenService:
    def __init__(
        self,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        cache_seconds: float = 0.0,
        now: Clock = utc_now,
    ) -> None:
        self._writes = writes
        self._reads = reads
        self._now = now  # tokens are dated, and judged expired, by this clock
        self._cache: TTLCache[str, _CachedToken] | None = (
            TTLCache(maxsize=10_000, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        self._lock = threading.Lock()

    def issue(
        self, role: Role, description: str = "", expires_in_seconds: float | None = None
    ) -> IssuedToken:
        """Create a token; the returned secret is the only copy that will ever exist."""
        if len(description) > 255:
            raise InvalidRequestError("description must be at most 255 characters")
        if expires_in_seconds is not None and expires_in_seconds <= 0:
            raise InvalidRequestError("expiry must be in the future")
        now = self._now()
        secret = TOKEN_PREFIX + secrets.token_hex(32)  # hex: never starts with '-' in a shell
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
        principal = self.cached(secret)
        if principal is not None:
            return principal
        key = _secret_hash(secret)
        with self._reads() as session:
            row = TokenRepository(session).by_secret_hash(key)
        now = self._now()
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
        principal = Principal(token_id=row.id, role=Role(row.role), description=row.description)
        if self._cache is not None:
            with self._lock:
                self._cache[key] = _CachedToken(principal, row.expires_at)
        return principal

    def cached(self, secret: str) -> Principal | None:
        """The principal for a recently seen valid token, without touching the database.

        Raises:
            AuthenticationRequiredError: malformed, or cached but now expired.
        """
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_TOKEN_CHARS:
            raise AuthenticationRequiredError(
                "the bearer token is malformed: tokens start with 'rlq_'; "
                "create one with `reliquary-server token create --role ...`"
            )
        if self._cache is None:
            return None
        key = _secret_hash(secret)
        with self._lock:
            hit = self._cache.get(key)
        if hit is None:
            return None
        if hit.expires_at is not None and hit.expires_at <= self._now():
            with self._lock:
                self._cache.pop(key, None)
            raise AuthenticationRequiredError(
                f"token {hit.principal.token_id} expired at {hit.expires_at.isoformat()}; "
                "ask an admin for a new one"
            )
        return hit.principal

    def revoke(self, token_id: str) -> None:
        """Revoke a token (idempotent).

        Raises:
            TokenNotFoundError: no token has this id.
        """
        with self._writes.begin() as session:
            if not TokenRepository(session).revoke(token_id, self._now()):
                raise TokenNotFoundError(f"no token with id {token_id!r}")
        if self._cache is not None:
            with self._lock:
                for key in [k for k, v in self._cache.items() if v.principal.token_id == token_id]:
                    self._cache.pop(key, None)

    def list(self) -> list[Token]:
        with self._reads() as session:
            return [_to_dto(r) for r in TokenRepository(session).list()]
