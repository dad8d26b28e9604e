"""``reliquary-server``: run the API and administer a registry.

Every option is also read from ``RELIQUARY_<NAME>`` (flags win), so a
deployment configures the API, migrations and admin commands the same way.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy import Engine

from registry.core.quantity import parse_duration
from registry.core.roles import Role
from registry.settings import Settings, env_variable

_OPTIONS = [
    ("--data-dir", "data_dir", "Where the embedded default keeps its files [./.reliquary]."),
    ("--database-url", "database_url", "sqlite:///path or postgresql://user@host/db."),
    ("--storage", "storage", "Blob backend: filesystem or s3 [filesystem]."),
    ("--blob-dir", "blob_dir", "Filesystem backend root [<data-dir>/blobs]."),
    ("--s3-endpoint-url", "s3_endpoint_url", "S3 endpoint (MinIO, ...); AWS when unset."),
    ("--s3-bucket", "s3_bucket", "S3 bucket."),
    ("--s3-region", "s3_region", "S3 region."),
    ("--s3-prefix", "s3_prefix", "Key prefix inside the bucket."),
    ("--log-origin", "log_origin", "Checkpoint origin / note key name [reliquary.local/log]."),
    ("--log-key-file", "log_key_file", "Checkpoint signing key [<data-dir>/log-key.pem]."),
    ("--policy-file", "policy_file", "Promotion policy (TOML); none: no requirements."),
]


def _settings_options(func: Any) -> Any:
    for flag, name, help_text in reversed(_OPTIONS):
        func = click.option(flag, name, default=None, help=help_text)(func)
    return func


def _load(values: dict[str, str | None]) -> Settings:
    try:
        settings = Settings.from_env(None, **values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    # flags become environment so that server worker processes see the same settings
    for name, value in values.items():
        if value is not None:
            os.environ[env_variable(name)] = value
    return settings


def _writable(check: Callable[[Settings], None], settings: Settings) -> None:
    """Run a ``registry.preflight`` check; a path we cannot write is one line, exit 1."""
    from registry.preflight import UnwritablePathError

    try:
        check(settings)
    except UnwritablePathError as exc:
        raise click.ClickException(str(exc)) from None


def _engine(settings: Settings) -> Engine:
    from registry.db.engine import make_engine
    from registry.preflight import check_database

    _writable(check_database, settings)
    return make_engine(settings.database.url, pool_size=2)


def _require_current_schema(engine: Engine) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from registry.migrate import alembic_config

    head = ScriptDirectory.from_config(
        alembic_config(engine.url.render_as_string(hide_password=False))
    ).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise click.ClickException(
            f"database schema is at {current or 'nothing'}, this release needs {head}: "
            "run `reliquary-server db upgrade` first"
        )


def _require_log_extends_witness(settings: Settings) -> None:
    """Refuse to serve a database whose log is behind (or forks from) a tree this
    registry already signed: the message names both sizes and what to do."""
    from registry.app import Services
    from registry.errors import LogIntegrityError
    from registry.storage import StorageError

    services = Services.build(settings)
    try:
        services.log.check_witness()
    except LogIntegrityError as exc:
        raise click.ClickException(exc.detail) from None
    except StorageError as exc:  # the server starts; no checkpoint is signed until it reads
        click.echo(f"warning: the log witness cannot be read now: {exc}", err=True)
    finally:
        services.close()


def _log_problem(services: Any) -> str | None:
    from registry.errors import LogIntegrityError

    try:
        services.log.check_witness()
    except LogIntegrityError as exc:
        return exc.detail
    return None


class _Commands(click.Group):
    """Admin commands end with one line, not a traceback, when the database or the blob
    store is full or unreachable (the API answers the same as 507 / 503 problems)."""

    def invoke(self, ctx: click.Context) -> Any:
        from registry.db.errors import DatabaseFullError
        from registry.storage import StorageError

        try:
            return super().invoke(ctx)
        except DatabaseFullError as exc:
            raise click.ClickException(
                f"the database is full ({exc}); nothing was written: free space and retry"
            ) from None
        except StorageError as exc:
            raise click.ClickException(f"the blob store failed: {exc}") from None


@click.group(cls=_Commands)
def main() -> None:
    """Reliquary registry server and administration."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="API processes.")
@click.option("--log-level", default="info", show_default=True)
@_settings_options
def serve(host: str, port: int, workers: int, log_level: str, **values: str | None) -> None:
    """Run the HTTP API."""
    import uvicorn

    from registry.preflight import check_server_paths

    settings = _load(values)
    _writable(check_server_paths, settings)
    engine = _engine(settings)
    _require_current_schema(engine)
    engine.dispose()
    _require_log_extends_witness(settings)
    uvicorn.run(
        "registry.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        # an access line per request costs ~7% of a fast request even when the log
        # level drops it (uvicorn formats it first): log requests only at info/debug
        access_log=log_level in ("info", "debug", "trace"),
        log_config=_log_config(log_level),
        proxy_headers=False,
        server_header=False,
        # closes connections whose request headers are late (RELIQUARY_HEADER_TIMEOUT)
        http="registry.protocol:HeaderTimeoutProtocol",
    )


def _log_config(log_level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the registry's own ``reliquary.*`` loggers at ``log_level``
    on the same stream (without it only their warnings would show)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["reliquary"] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    return config


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@_settings_options
def db_upgrade(revision: str, **values: str | None) -> None:
    """Apply Alembic migrations up to REVISION."""
    from registry.migrate import upgrade

    engine = _engine(_load(values))
    upgrade(engine, revision)
    engine.dispose()
    click.echo(f"database at {revision}", err=True)


@main.group()
def token() -> None:
    """Bearer tokens."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--description", default="")
@click.option("--expires", default=None, help="Lifetime such as 30d or 12h (default: never).")
@_settings_options
def token_create(role: str, description: str, expires: str | None, **values: str | None) -> None:
    """Create a token and print it alone on stdout (it is shown only once)."""
    from registry.db.engine import make_session_factory
    from registry.domain.auth.services import TokenService

    engine = _engine(_load(values))
    _require_current_schema(engine)
    try:
        lifetime = None if expires is None else parse_duration(expires)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from exc
    service = TokenService(make_session_factory(engine), make_session_factory(engine))
    issued = service.issue(Role(role), description, lifetime)
    engine.dispose()
    click.echo(f"created {role} token {issued.id}", err=True)
    click.echo(issued.token)


@token.command("revoke")
@click.argument("token_id")
@_settings_options
def token_revoke(token_id: str, **values: str | None) -> None:
    """Revoke the token with TOKEN_ID."""
    from registry.db.engine import make_session_factory
    from registry.domain.auth.services import TokenService
    from registry.errors import TokenNotFoundError

    engine = _engine(_load(values))
    service = TokenService(make_session_factory(engine), make_session_factory(engine))
    try:
        service.revoke(token_id)
    except TokenNotFoundError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        engine.dispose()
    click.echo(f"revoked token {token_id}", err=True)


@main.group("log-key")
def log_key() -> None:
    """The Ed25519 key that signs transparency-log checkpoints."""


@log_key.command("create")
@click.option("--data-dir", "data_dir", default=None, help="[./.reliquary]")
@click.option(
    "--log-key-file",
    "log_key_file",
    default=None,
    help="Where to write it [<data-dir>/log-key.pem, RELIQUARY_LOG_KEY_FILE].",
)
@click.option(
    "--log-origin", "log_origin", default=None, help="Checkpoint origin [RELIQUARY_LOG_ORIGIN]."
)
def log_key_create(data_dir: str | None, log_key_file: str | None, log_origin: str | None) -> None:
    """Create the checkpoint key (0600) if missing and print the note verifier key."""
    from registry.app import create_log_key, load_log_signer
    from registry.preflight import check_log_key

    settings = _load({"data_dir": data_dir, "log_key_file": log_key_file, "log_origin": log_origin})
    _writable(check_log_key, settings)
    created = create_log_key(settings.log.key_file)
    click.echo(f"{'created' if created else 'kept existing'} {settings.log.key_file}", err=True)
    click.echo(load_log_signer(settings).verifier_key())


@main.command()
@click.option("--deep", is_flag=True, help="Rehash every blob (reads everything).")
@click.option("--repair", is_flag=True, help="Record orphaned blobs whose bytes verify.")
@_settings_options
def fsck(deep: bool, repair: bool, **values: str | None) -> None:
    """Compare the database with the blob store, and channel pointers with the log;
    exit 1 if anything disagrees."""
    from registry.app import Services
    from registry.preflight import check_server_paths

    settings = _load(values)
    _writable(check_server_paths, settings)
    services = Services.build(settings)
    try:
        report = services.blobs.fsck(deep=deep, repair=repair)
        swept = services.reconciler.run(orphans=False)
        channels = services.channels.disagreements()
        log_problem = _log_problem(services)
    finally:
        services.close()
    click.echo(
        f"checked {report.checked} blobs; expired {swept.expired_uploads} stale uploads; "
        f"removed {swept.staged_writes} abandoned staged writes"
    )
    for label, items in (
        ("missing from storage", report.missing),
        ("wrong size", report.wrong_size),
        ("corrupt", report.corrupt),
        ("orphaned (no row)", report.orphaned),
        ("repaired", report.repaired),
    ):
        for item in items:
            click.echo(f"{label}: blake3:{item}")
    for problem in channels:
        click.echo(f"channel disagrees with the log: {problem}")
    if log_problem is not None:
        click.echo(f"log behind its witness: {log_problem}")
    unrepaired = set(report.orphaned) - set(report.repaired)
    if (
        report.missing
        or report.wrong_size
        or report.corrupt
        or unrepaired
        or channels
        or log_problem
    ):
        sys.exit(1)
