"""Roles. A token has one: ``admin`` may call every endpoint; each other role its own set.

A signing key has one of the ``KEY_ROLES`` (publisher, worker, governor): which
predicates it may sign is ``registry.core.predicates.SIGNING_ROLES``. ``KeyRoleName``
is the same set as the wire type of a key registration, so a request naming another
role is refused while it is parsed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, cast


class Role(StrEnum):
    ADMIN = "admin"
    PUBLISHER = "publisher"
    WORKER = "worker"
    GOVERNOR = "governor"
    READER = "reader"


READ_ROLES = frozenset(Role)
KEY_ROLES = frozenset({Role.PUBLISHER, Role.WORKER, Role.GOVERNOR})
KeyRoleName = Literal["publisher", "worker", "governor"]
"""``KEY_ROLES`` as the values a request may name (``tests/core`` keeps the two equal)."""


def key_role_name(role: Role) -> KeyRoleName:
    """``role`` as the wire value of a key's role.

    Raises:
        ValueError: ``role`` is not one of ``KEY_ROLES`` (no key holds it).
    """
    if role not in KEY_ROLES:
        raise ValueError(f"{role.value!r} is not a signing key's role")
    return cast(KeyRoleName, role.value)
