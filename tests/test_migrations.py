"""The schema is Alembic's: migrations match the models, and the database enforces digests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.exc import DataError, IntegrityError

from registry.core.dsse import sign_envelope, statement_sha256
from registry.core.keys import SigningKey
from registry.db.engine import make_engine
from registry.db.models import Base, BlobRow, TokenRow
from registry.migrate import alembic_config, upgrade
from tests.conftest import _create_postgres_database

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


def _insert_artifact(conn: Connection, now: datetime) -> None:
    """Artifact ``a/b@v1`` (blake3 ``aa…``), as raw SQL: the models may be newer than
    the revision a migration test stopped at."""
    conn.execute(
        text(
            "INSERT INTO artifacts (digest, sha256, name, version, kind, manifest, "
            "size_bytes, created_at) VALUES (:d, :s, 'a/b', 'v1', 'model', :m, 0, :t)"
        ),
        {"d": "a" * 64, "s": "b" * 64, "m": b"{}", "t": now},
    )


@pytest.mark.parametrize("name", ENGINES)
def test_0007_gives_a_replay_stored_before_it_no_statement_id(
    name: str, tmp_path: Path, postgres_server: str
) -> None:
    """Two rows stored before 0007 for one signed statement (a replay re-encoded): the
    first gets the statement id, the later one NULL (it no longer counts)."""
    if name == "sqlite":
        engine, drop = make_engine(f"sqlite:///{tmp_path / 'old.db'}"), None
    else:
        url, drop = _create_postgres_database(postgres_server)
        engine = make_engine(url)
    try:
        upgrade(engine, "0006")
        key = SigningKey.generate()
        envelope = sign_envelope(b'{"a": 1}', key)
        first = envelope.to_json()
        replay = json.dumps(json.loads(first), indent=2).encode()  # the same statement
        now = datetime.now(UTC)
        with engine.begin() as conn:
            _insert_artifact(conn, now)
            conn.execute(
                text(
                    "INSERT INTO signing_keys (keyid, public_key, role, description, "
                    "created_at, log_index) VALUES (:k, :p, 'publisher', '', :t, 0)"
                ),
                {"k": key.public.keyid, "p": key.public.raw, "t": now},
            )
            for index, raw in enumerate((first, replay), start=1):
                conn.execute(
                    text(
                        "INSERT INTO attestations (envelope_sha256, artifact_digest, "
                        "predicate_type, keyid, envelope, log_index, created_at) VALUES "
                        "(:e, :a, 'p', :k, :b, :i, :t)"
                    ),
                    {"e": hashlib.sha256(raw).hexdigest(), "a": "a" * 64,
                     "k": key.public.keyid, "b": raw, "i": index, "t": now},
                )  # fmt: skip
        upgrade(engine)
        with engine.connect() as conn:
            ids = (
                conn.execute(text("SELECT statement_sha256 FROM attestations ORDER BY log_index"))
                .scalars()
                .all()
            )
        assert ids == [
            statement_sha256(envelope.payload_type, envelope.payload, key.public.keyid),
            None,
        ]
    finally:
        engine.dispose()
        if drop is not None:
            drop()


@pytest.mark.parametrize("name", ENGINES)
def test_0008_makes_a_refused_jobs_prefix_a_column_and_back(
    name: str, tmp_path: Path, postgres_server: str
) -> None:
    """Before 0008 an engine refusal was a failed job whose error began with
    ``nondeterministic: ``. 0008 flags exactly those (not a queued job's words, nor
    another spelling) and keeps the worker's words; the downgrade writes the prefix back."""
    if name == "sqlite":
        engine, drop = make_engine(f"sqlite:///{tmp_path / 'old.db'}"), None
    else:
        url, drop = _create_postgres_database(postgres_server)
        engine = make_engine(url)
    jobs = {  # id -> (state, last_error) as stored before 0008
        "refused": ("failed", "nondeterministic: op RandomUniform needs a seed"),
        "gave-up": ("failed", "no GPU"),
        "no-error": ("failed", None),
        "requeued": ("queued", "nondeterministic: words a worker sent, retrying"),
        "spelt": ("failed", "Nondeterministic: not the prefix 0005..0007 wrote"),
    }
    try:
        upgrade(engine, "0007")
        now = datetime.now(UTC)
        with engine.begin() as conn:
            _insert_artifact(conn, now)
            for job_id, (state, error) in jobs.items():
                conn.execute(
                    text(
                        "INSERT INTO jobs (id, artifact_digest, profile, state, attempts, "
                        "max_attempts, last_error, created_at, updated_at) VALUES "
                        "(:i, :a, 'cpu-tensorflow', :s, 1, 3, :e, :t, :t)"
                    ),
                    {"i": job_id, "a": "a" * 64, "s": state, "e": error, "t": now},
                )
        query = text("SELECT id, refused_nondeterministic, last_error FROM jobs ORDER BY id")

        upgrade(engine)
        with engine.connect() as conn:
            after = {row[0]: (bool(row[1]), row[2]) for row in conn.execute(query)}
        assert after == {
            "refused": (True, "op RandomUniform needs a seed"),
            **{
                job_id: (False, error) for job_id, (_, error) in jobs.items() if job_id != "refused"
            },
        }

        config = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0007")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, state, last_error FROM jobs"))
            assert {row[0]: (row[1], row[2]) for row in rows} == jobs
    finally:
        engine.dispose()
        if drop is not None:
            drop()
