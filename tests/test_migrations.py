"""The schema is Alembic's: migrations match the models, and the database enforces digests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert
from sqlalchemy.exc import DataError, IntegrityError

from registry.db.models import Base, BlobRow, TokenRow

ENGINES = ["sqlite", "postgresql"]


@pytest.mark.parametrize("name", ENGINES)
def test_migrations_match_the_models(migrated_databases: dict[str, Engine], name: str) -> None:
    with migrated_databases[name].connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize(
    "bad", ["A" * 64, "g" * 64, "a" * 63, "a" * 65, "blake3:" + "a" * 57], ids=str
)
def test_database_refuses_malformed_digests(
    migrated_databases: dict[str, Engine], name: str, bad: str
) -> None:
    engine = migrated_databases[name]
    row = {"blake3": bad, "sha256": "b" * 64, "size_bytes": 1, "created_at": datetime.now(UTC)}
    with pytest.raises((IntegrityError, DataError)), engine.begin() as conn:
        conn.execute(insert(BlobRow).values(row))


@pytest.mark.parametrize("name", ENGINES)
def test_database_refuses_unknown_roles(migrated_databases: dict[str, Engine], name: str) -> None:
    row = {
        "id": "t1",
        "secret_sha256": "c" * 64,
        "role": "root",
        "description": "",
        "created_at": datetime.now(UTC),
    }
    with pytest.raises(IntegrityError), migrated_databases[name].begin() as conn:
        conn.execute(insert(TokenRow).values(row))
