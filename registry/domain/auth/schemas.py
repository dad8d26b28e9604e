"""Auth DTOs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from registry.core.roles import Role


@dataclass(frozen=True, slots=True)
class Grant:
    """What a scoped ``/v2`` token (``registry.domain.auth.scoped``) was granted: actions
    (``pull``, ``push``) per repository name, and the catalog. Never wider than its
    parent token's role."""

    repositories: Mapping[str, frozenset[str]] = field(default_factory=dict)
    catalog: bool = False

    def allows(self, action: str, name: str | None) -> bool:
        """Whether ``action`` (``pull``, ``push`` or ``catalog``) on ``name`` is granted."""
        if action == "catalog" or name is None:
            return self.catalog
        return action in self.repositories.get(name, frozenset())


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the token's id, role and description (``None`` id for
    anonymous reads); the description is what history shows as the actor.

    ``grant`` is None for a Reliquary token (its role's rights everywhere); a scoped
    ``/v2`` token carries its parent's id, role and description and what it was granted.
    """

    token_id: str | None
    role: Role
    description: str = ""
    grant: Grant | None = None


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    role: Role
    description: str = ""
    expires_in: str | None = None  # duration with unit: "30d", "12h"


class Token(msgspec.Struct):
    id: str
    role: Role
    description: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None = None


class IssuedToken(Token):
    token: str = ""  # shown once, never stored


class RegistryToken(msgspec.Struct):
    """The token endpoint's answer (distribution ``spec/auth/token.md``): ``token`` and
    ``access_token`` are the same scoped token, valid ``expires_in`` seconds from
    ``issued_at`` (RFC 3339, UTC)."""

    token: str
    access_token: str
    expires_in: int
    issued_at: str
