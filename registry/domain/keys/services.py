"""Signing keys: register (admin), revoke (admin, logged, permanent), look up.

Invariants: a keyid is the sha256 of the raw Ed25519 public key and names one
key with one role forever; revocation cannot be undone; registration and
revocation each append a log entry in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from registry.core.errors import InvalidKeyError
from registry.core.keys import PublicKey
from registry.core.roles import KEY_ROLES, Role, key_role_name
from registry.db.models import SigningKeyRow
from registry.domain.keys.ledger import KeyLedger, LoggedKey
from registry.domain.keys.repositories import KeyRepository
from registry.domain.keys.schemas import RegisteredKey
from registry.domain.log.services import TransparencyLog
from registry.errors import InvalidRequestError, KeyConflictError, KeyNotFoundError


def to_dto(row: SigningKeyRow) -> RegisteredKey:
    return RegisteredKey(
        keyid=row.keyid,
        role=key_role_name(Role(row.role)),
        public_key=PublicKey.from_raw(row.public_key).to_pem().decode(),
        description=row.description,
        created_at=row.created_at,
        log_index=row.log_index,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )


class KeyService:
    def __init__(
        self, writes: sessionmaker[Session], reads: sessionmaker[Session], log: TransparencyLog
    ) -> None:
        self._writes = writes
        self._reads = reads
        self._log = log
        self._ledger = KeyLedger(log)

    def logged(self) -> dict[str, LoggedKey]:
        """The keys the log registered and never revoked: what evidence may trust.

        Raises LogIntegrityError."""
        with self._reads() as session:
            return self._ledger.trusted(session)

    def register(self, pem: str, role: Role, description: str) -> tuple[RegisteredKey, bool]:
        """Register a public key; (key, True) when new, (key, False) if already so registered.

        Raises:
            InvalidRequestError: not an Ed25519 public key PEM, or a role no key may hold.
            KeyConflictError: registered with another role, or revoked.
        """
        if role not in KEY_ROLES:
            raise InvalidRequestError(
                f"role must be one of {', '.join(sorted(KEY_ROLES))}, not {role.value!r}"
            )
        try:
            public = PublicKey.from_pem(pem.encode())
        except InvalidKeyError as exc:
            raise InvalidRequestError(f"public_key: {exc}") from exc
        if len(description) > 255:
            raise InvalidRequestError("description must be at most 255 characters")
        existing = self.find(public.keyid)
        if existing is not None:
            return self._same_or_conflict(existing, role), False
        now = datetime.now(UTC)
        try:
            with self._writes.begin() as session:
                index = self._log.append(
                    session,
                    "key.registered",
                    {"keyid": public.keyid, "role": role.value, "public_key": public.raw.hex()},
                )
                row = SigningKeyRow(
                    keyid=public.keyid,
                    public_key=public.raw,
                    role=role.value,
                    description=description,
                    created_at=now,
                    revoked_at=None,
                    revoked_reason=None,
                    log_index=index,
                )
                KeyRepository(session).add(row)
        except IntegrityError:  # registered concurrently
            existing = self.find(public.keyid)
            if existing is None:
                raise
            return self._same_or_conflict(existing, role), False
        return to_dto(row), True

    @staticmethod
    def _same_or_conflict(existing: RegisteredKey, role: Role) -> RegisteredKey:
        if existing.revoked_at is not None:
            raise KeyConflictError(
                f"key {existing.keyid} was revoked at {existing.revoked_at.isoformat()}; "
                "revoked keys cannot come back: generate a new key",
                keyid=existing.keyid,
            )
        if existing.role != role:
            raise KeyConflictError(
                f"key {existing.keyid} is registered as {existing.role}, not {role.value}; "
                "use one key per role",
                keyid=existing.keyid,
                role=existing.role,
            )
        return existing

    def revoke(self, keyid: str, reason: str) -> RegisteredKey:
        """Revoke a key for good; logged. Revoking twice keeps the first revocation.

        Raises:
            KeyNotFoundError, InvalidRequestError (empty reason).
        """
        if not reason.strip() or len(reason) > 1024:
            raise InvalidRequestError("a revocation needs a reason (1..1024 characters)")
        with self._writes.begin() as session:
            row = KeyRepository(session).get(keyid)
            if row is None:
                raise KeyNotFoundError(f"no signing key {keyid}", keyid=keyid)
            if row.revoked_at is None:
                self._log.append(session, "key.revoked", {"keyid": keyid, "reason": reason})
                row.revoked_at = datetime.now(UTC)
                row.revoked_reason = reason
            return to_dto(row)

    def find(self, keyid: str) -> RegisteredKey | None:
        with self._reads() as session:
            return self.find_in(session, keyid)

    @staticmethod
    def find_in(session: Session, keyid: str) -> RegisteredKey | None:
        """``find`` inside the caller's transaction (a check and its write, atomically)."""
        row = KeyRepository(session).get(keyid)
        return None if row is None else to_dto(row)

    def list(self, role: Role | None = None) -> list[RegisteredKey]:
        with self._reads() as session:
            return [to_dto(r) for r in KeyRepository(session).list(role.value if role else None)]
