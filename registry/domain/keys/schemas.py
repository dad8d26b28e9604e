"""Signing-key DTOs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class KeyRole(StrEnum):
    PUBLISHER = "publisher"
    WORKER = "worker"
    GOVERNOR = "governor"


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    public_key: str  # SubjectPublicKeyInfo PEM of an Ed25519 key
    role: KeyRole
    description: str = ""


class KeyRevoke(msgspec.Struct, forbid_unknown_fields=True):
    reason: str


class SigningKey(msgspec.Struct):
    keyid: str
    role: KeyRole
    public_key: str  # PEM
    description: str
    created_at: datetime
    log_index: int
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
