"""Reading a deployment's database whole, to prove that a refused request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from registry.db.models import Base


def database_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: what "nothing changed" compares."""
    with engine.connect() as conn:
        return {
            table.name: sorted(
                (tuple(map(repr, row)) for row in conn.execute(select(table))), key=repr
            )
            for table in Base.metadata.sorted_tables
        }
