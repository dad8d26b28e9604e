"""Bearer tokens: issue, authenticate, revoke.

Invariants: a token's secret is never stored, only its SHA-256; an expired or
revoked token authenticates nobody; every token has exactly one role.

Valid tokens are cached in memory for ``cache_seconds`` (setting
``RELIQUARY_TOKEN_CACHE_TTL``, default 2s). A revocation through this process
takes effect at once; through another replica or the CLI, within that TTL.
Expiry is always checked against the clock, cached or not.

Scoped ``/v2`` tokens (``registry.domain.auth.scoped``) are issued from a valid
token and checked here too: their seal and expiry, then their parent by id, through
the same cache, so revoking the parent ends them within the same TTL.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cachetools import TTLCache
from sqlalchemy.orm import Session, sessionmaker

from registry.core.clock import Clock, utc_now
from registry.core.roles import Role
from registry.db.models import TokenRow
from registry.domain.auth.repositories import TokenRepository
from registry.domain.auth.schemas import IssuedToken, Principal, RegistryToken, Token
from registry.domain.auth.scoped import (
    SCOPED_TOKEN_SECONDS,
    ScopedClaims,
    ScopedTokenCodec,
    grant_for,
    parse_scopes,
)
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
        log_key_seed: bytes | None = None,
    ) -> None:
        """``log_key_seed``: the checkpoint log key's private seed, which scoped ``/v2``
        tokens are sealed under (None: this service neither issues nor accepts them)."""
        self._writes = writes
        self._reads = reads
        self._now = now  # tokens are dated, and judged expired, by this clock
        self._cache: TTLCache[str, _CachedToken] | None = (
            TTLCache(maxsize=10_000, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        # valid tokens by id: the parents of scoped tokens
        self._by_id: TTLCache[str, _CachedToken] | None = (
            TTLCache(maxsize=10_000, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        self._scoped = None if log_key_seed is None else ScopedTokenCodec(log_key_seed)
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
        if row is None:
            raise AuthenticationRequiredError("the bearer token is not known to this registry")
        principal = self._judge(row)
        if self._cache is not None:
            with self._lock:
                self._cache[key] = _CachedToken(principal, row.expires_at)
        return principal

    def _judge(self, row: TokenRow) -> Principal:
        """The principal of a token row that is neither revoked nor expired.

        Raises:
            AuthenticationRequiredError: revoked or expired.
        """
        if row.revoked_at is not None:
            raise AuthenticationRequiredError(
                f"token {row.id} was revoked at {row.revoked_at.isoformat()}; ask an admin for a new one"
            )
        if row.expires_at is not None and row.expires_at <= self._now():
            raise AuthenticationRequiredError(
                f"token {row.id} expired at {row.expires_at.isoformat()}; ask an admin for a new one"
            )
        return Principal(token_id=row.id, role=Role(row.role), description=row.description)

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
        with self._lock:
            if self._cache is not None:
                for key in [k for k, v in self._cache.items() if v.principal.token_id == token_id]:
                    self._cache.pop(key, None)
            if self._by_id is not None:
                self._by_id.pop(token_id, None)

    def list(self) -> list[Token]:
        with self._reads() as session:
            return [_to_dto(r) for r in TokenRepository(session).list()]

    # -- scoped /v2 tokens ---------------------------------------------------------------
    def issue_scoped(self, principal: Principal, scopes: Sequence[str]) -> RegistryToken:
        """A scoped token for ``principal`` (a Reliquary token's, or anonymous) granting
        what ``scopes`` ask for within its role (``scoped.grant_for``), valid
        ``SCOPED_TOKEN_SECONDS``.

        Raises:
            AuthenticationRequiredError: ``principal`` is itself a scoped token's.
            InvalidRequestError: a malformed scope, or too many.
        """
        if principal.grant is not None:
            raise AuthenticationRequiredError(
                "a scoped token cannot be exchanged for another: log in with your Reliquary "
                "token (the password of Basic auth, or Authorization: Bearer rlq_...)"
            )
        grant = grant_for(principal.role, parse_scopes(scopes))
        issued = self._now().replace(microsecond=0)
        expires = issued + timedelta(seconds=SCOPED_TOKEN_SECONDS)
        token = self._codec().encode(
            ScopedClaims(principal.token_id, principal.role, grant, expires)
        )
        return RegistryToken(
            token=token,
            access_token=token,
            expires_in=SCOPED_TOKEN_SECONDS,
            issued_at=issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def cached_scoped(self, secret: str, anonymous_reads: bool) -> Principal | None:
        """The principal of a scoped token whose parent this process saw recently (None:
        the parent must be read from the database, ``authenticate_scoped``).

        Raises:
            AuthenticationRequiredError: not a valid scoped token, expired, or anonymous
                while anonymous reads are off.
        """
        claims = self._open(secret, anonymous_reads)
        if claims.parent is None:
            return Principal(token_id=None, role=Role.READER, grant=claims.grant)
        parent = self._cached_by_id(claims.parent)
        return None if parent is None else _scoped_principal(parent, claims)

    def authenticate_scoped(self, secret: str, anonymous_reads: bool) -> Principal:
        """The principal of a scoped token: its parent's id, role and description, and
        what it was granted.

        Raises:
            AuthenticationRequiredError: not a valid scoped token, expired, anonymous
                while anonymous reads are off, or its parent is unknown, expired or revoked.
        """
        principal = self.cached_scoped(secret, anonymous_reads)
        if principal is not None:
            return principal
        claims = self._open(secret, anonymous_reads)
        assert claims.parent is not None  # an anonymous one was answered above
        return _scoped_principal(self._principal_by_id(claims.parent), claims)

    def _codec(self) -> ScopedTokenCodec:
        if self._scoped is None:
            raise RuntimeError("this TokenService was built without the log key seed")
        return self._scoped

    def _open(self, secret: str, anonymous_reads: bool) -> ScopedClaims:
        if self._scoped is None:
            raise AuthenticationRequiredError("scoped tokens are not accepted by this service")
        claims = self._scoped.decode(secret)
        if claims.expires_at <= self._now():
            raise AuthenticationRequiredError(
                f"the scoped token expired at {claims.expires_at.isoformat()}; fetch a new one "
                "from /v2/token (registry clients do so on their own)"
            )
        if claims.parent is None and not anonymous_reads:
            raise AuthenticationRequiredError(
                "this anonymous token is void now that anonymous reads are off: "
                "log in with a Reliquary token as the password"
            )
        return claims

    def _cached_by_id(self, token_id: str) -> Principal | None:
        if self._by_id is None:
            return None
        with self._lock:
            hit = self._by_id.get(token_id)
        if hit is None:
            return None
        if hit.expires_at is not None and hit.expires_at <= self._now():
            with self._lock:
                self._by_id.pop(token_id, None)
            raise AuthenticationRequiredError(
                f"token {token_id} expired at {hit.expires_at.isoformat()}; "
                "ask an admin for a new one"
            )
        return hit.principal

    def _principal_by_id(self, token_id: str) -> Principal:
        with self._reads() as session:
            row = TokenRepository(session).by_id(token_id)
        if row is None:
            raise AuthenticationRequiredError(
                f"token {token_id}, which this scoped token was issued from, is not known "
                "to this registry"
            )
        principal = self._judge(row)
        if self._by_id is not None:
            with self._lock:
                self._by_id[token_id] = _CachedToken(principal, row.expires_at)
        return principal


def _scoped_principal(parent: Principal, claims: ScopedClaims) -> Principal:
    return Principal(
        token_id=parent.token_id,
        role=parent.role,
        description=parent.description,
        grant=claims.grant,
    )
