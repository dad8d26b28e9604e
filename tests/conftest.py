"""Shared fixtures: real databases migrated by Alembic, real blob stores, real apps.

Every API test runs on two deployments:
- ``embedded``: SQLite file + filesystem blob store (the default a newcomer runs);
- ``production``: PostgreSQL + S3 over HTTP (moto server, or RELIQUARY_TEST_S3_ENDPOINT).

PostgreSQL is required, never skipped: set RELIQUARY_TEST_POSTGRES_URL to point at
one (default postgresql://postgres@127.0.0.1:5432/postgres); `./scripts/test` starts
the local server when it is down.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from registry.app import Services, create_asgi, create_log_key
from registry.core.clock import Clock
from registry.core.roles import Role
from registry.db.engine import make_engine
from registry.db.models import Base
from registry.fastpath import FastPath
from registry.migrate import upgrade
from registry.settings import Settings
from tests.support.s3 import S3Endpoint, create_bucket, s3_endpoint


def gpu_present() -> bool:
    """An NVIDIA GPU answers ``nvidia-smi -L`` here."""
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False).returncode == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu`` tests run only where a GPU is (the device machine); elsewhere they say why."""
    if any("gpu" in item.keywords for item in items) and not gpu_present():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU; none is present on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


POSTGRES_URL = os.environ.get(
    "RELIQUARY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """The one S3 endpoint of the test session (one moto server, or
    ``RELIQUARY_TEST_S3_ENDPOINT``); every user takes a bucket of its own on it."""
    with s3_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def postgres_server() -> str:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required and unreachable at {POSTGRES_URL}: {exc}. "
            "Run ./scripts/test (it starts the local server) or set RELIQUARY_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    return POSTGRES_URL


def _create_postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    name = f"reliquary_test_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


@pytest.fixture(scope="session")
def migrated_databases(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str
) -> Iterator[dict[str, Engine]]:
    """One SQLite and one PostgreSQL database per test session, built by ``alembic upgrade``."""
    sqlite_engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}")
    pg_url, drop = _create_postgres_database(postgres_server)
    pg_engine = make_engine(pg_url)
    try:
        for engine in (sqlite_engine, pg_engine):
            upgrade(engine)
        yield {"sqlite": sqlite_engine, "postgresql": pg_engine}
    finally:
        sqlite_engine.dispose()
        pg_engine.dispose()
        drop()


def wipe(engine: Engine) -> None:
    """Empty every table (children first) so the next test starts clean."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))
        conn.execute(text("INSERT INTO log_head (id, size) VALUES (1, 0)"))


@dataclass
class Deployment:
    """One registry (database + blob store) and the means to run apps on it."""

    name: str
    engine: Engine
    env: dict[str, str]

    def settings(self, **env: str) -> Settings:
        return Settings.from_env({**self.env, **env})

    def services(self, now: Clock | None = None, /, **env: str) -> Services:
        """``now``: the services' clock (``tests.support.clock``), the real one by default."""
        return Services.build(self.settings(**env), engine=self.engine, now=now)

    def asgi(self, now: Clock | None = None, /, **env: str) -> FastPath:
        """The app as served, on this deployment; env overrides settings."""
        svc = self.services(now, **env)
        return create_asgi(svc.settings, services=svc)

    def client(self, app: FastPath | None = None, **env: str) -> TestClient[Any]:
        """An in-process client for ``app`` or a new app on this deployment."""
        return TestClient(app or self.asgi(**env), raise_server_exceptions=False)

    def token(self, role: Role, **kwargs: Any) -> str:
        return self.services().tokens.issue(role, **kwargs).token


@pytest.fixture(params=["embedded", "production"])
def deployment(
    request: pytest.FixtureRequest,
    migrated_databases: dict[str, Engine],
    tmp_path: Path,
) -> Iterator[Deployment]:
    if request.param == "embedded":
        engine = migrated_databases["sqlite"]
        env = {"RELIQUARY_DATA_DIR": str(tmp_path / "data"), "RELIQUARY_STORAGE": "filesystem"}
    else:
        engine = migrated_databases["postgresql"]
        endpoint: S3Endpoint = request.getfixturevalue("s3")
        bucket = f"reliquary-{secrets.token_hex(6)}"
        create_bucket(endpoint, bucket)
        env = {
            "RELIQUARY_DATA_DIR": str(tmp_path / "data"),
            "RELIQUARY_STORAGE": "s3",
            "RELIQUARY_S3_BUCKET": bucket,
            "RELIQUARY_S3_ENDPOINT_URL": endpoint.endpoint_url,
            "RELIQUARY_S3_REGION": endpoint.region,
            "RELIQUARY_S3_ACCESS_KEY_ID": endpoint.access_key_id,
            "RELIQUARY_S3_SECRET_ACCESS_KEY": endpoint.secret_access_key,
            # production never creates its own log key: the operator provides one
            "RELIQUARY_LOG_KEY_FILE": str(tmp_path / "log-key.pem"),
        }
        create_log_key(tmp_path / "log-key.pem")
    env["RELIQUARY_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    dep = Deployment(request.param, engine, env)
    try:
        yield dep
    finally:
        wipe(engine)


@dataclass
class Api:
    """A client plus a token per role: what the API tests drive."""

    client: TestClient[Any]
    tokens: dict[Role, str]
    app: FastPath

    def auth(self, role: Role = Role.PUBLISHER) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def api(deployment: Deployment) -> Iterator[Api]:
    tokens = {role: deployment.token(role) for role in Role}
    app = deployment.asgi()
    with deployment.client(app) as client:
        yield Api(client, tokens, app)


def api_with_policy(
    deployment: Deployment,
    tmp_path: Path,
    policy: bytes,
    now: Clock | None = None,
    /,
    **env: str,
) -> Api:
    """An open client on an app that enforces ``policy`` (``env`` overrides settings,
    ``now`` is its clock); the caller closes ``api.client``."""
    path = tmp_path / "policy.toml"
    path.write_bytes(policy)
    tokens = {role: deployment.token(role) for role in Role}
    app = deployment.asgi(now, RELIQUARY_POLICY_FILE=str(path), **env)
    client = deployment.client(app)
    client.__enter__()
    return Api(client, tokens, app)
