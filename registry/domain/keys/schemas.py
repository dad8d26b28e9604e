"""Signing-key DTOs."""

from __future__ import annotations

from datetime import datetime

import msgspec

from registry.core.roles import KeyRoleName


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    public_key: str  # SubjectPublicKeyInfo PEM of an Ed25519 key
    role: KeyRoleName  # one of KEY_ROLES: another role is refused while parsing
    description: str = ""


class KeyRevoke(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


class RegisteredKey(msgspec.Struct):
    """A registered signing key's public half, role and lifecycle."""

    keyid: str
    role: KeyRoleName
    public_key: str  # PEM
    description: str
    created_at: datetime
    log_index: int
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
