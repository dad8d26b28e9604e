"""Auth DTOs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from registry.core.roles import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the token's id, role and description (``None`` id for
    anonymous reads); the description is what history shows as the actor."""

    token_id: str | None
    role: Role
    description: str = ""


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
