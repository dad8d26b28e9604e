"""Signing keys as the log records them: registrations and revocations.

The ``signing_keys`` table answers the API; the evidence a policy counts trusts only
this ledger: a key is trusted for its logged role while the log holds its
``key.registered`` entry (public key and role) and no ``key.revoked`` entry. A key row
inserted, re-roled or un-revoked in the database therefore counts for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from registry.core.errors import CoreError
from registry.core.keys import PublicKey
from registry.core.roles import KEY_ROLES, Role
from registry.domain.log.follower import LogFollower
from registry.domain.log.services import TransparencyLog
from registry.errors import LogIntegrityError

KEY_EVENTS = ("key.registered", "key.revoked")


@dataclass(frozen=True, slots=True)
class LoggedKey:
    keyid: str
    role: Role  # one of KEY_ROLES
    public: PublicKey
    revoked: bool = False


class KeyLedger:
    def __init__(self, log: TransparencyLog) -> None:
        self._keys: dict[str, LoggedKey] = {}
        self._follower = LogFollower(log, KEY_EVENTS, self._apply)

    def _apply(self, index: int, doc: dict[str, Any]) -> None:
        try:
            keyid = str(doc["keyid"])
            if doc["kind"] == "key.revoked":
                key = self._keys[keyid]
                self._keys[keyid] = LoggedKey(key.keyid, key.role, key.public, revoked=True)
                return
            public = PublicKey.from_raw(bytes.fromhex(str(doc["public_key"])))
            if public.keyid != keyid:
                raise ValueError(f"its public key has keyid {public.keyid}")
            role = Role(str(doc["role"]))
            if role not in KEY_ROLES:
                raise ValueError(f"{role.value!r} is not a key role")
            self._keys[keyid] = LoggedKey(keyid, role, public)
        except (KeyError, TypeError, ValueError, CoreError) as exc:
            raise LogIntegrityError(
                f"log entry {index} is not a readable key event: {exc}"
            ) from exc

    def trusted(self, session: Session) -> dict[str, LoggedKey]:
        """Every logged, unrevoked key (refreshed from ``session``'s committed entries).

        Raises:
            LogIntegrityError: a key entry is not its leaf, or unreadable.
        """
        self._follower.refresh(session)
        with self._follower.lock:
            return {k: v for k, v in self._keys.items() if not v.revoked}
