"""Constraint helpers shared by migrations (they must build what the models declare)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def hex64(table: str, column: str) -> sa.CheckConstraint:
    """``column`` holds 64 lowercase hex, in this dialect's syntax (see ``hex64_checks``)."""
    if op.get_bind().dialect.name == "postgresql":
        return sa.CheckConstraint(
            f"{column} ~ '^[0-9a-f]{{64}}$'", name=f"ck_{table}_{column}_hex_pg"
        )
    return sa.CheckConstraint(
        f"length({column}) = 64 AND {column} NOT GLOB '*[^0-9a-f]*'",
        name=f"ck_{table}_{column}_hex_sqlite",
    )
