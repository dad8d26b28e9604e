"""Token roles. ``admin`` may call every endpoint; each other role its own set."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PUBLISHER = "publisher"
    WORKER = "worker"
    GOVERNOR = "governor"
    READER = "reader"


READ_ROLES = frozenset(Role)
