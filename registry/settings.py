"""Registry settings: frozen groups filled from flags or ``RELIQUARY_*`` variables.

Every setting has one name, used as ``--kebab-case`` flag and as
``RELIQUARY_UPPER_CASE`` environment variable (``SettingSource`` reads it, a flag
winning). Sizes and durations carry units (``10GiB``, ``24h``) and are read by
``registry.core.quantity``. Each group reads its own settings (``from_env``) and
checks its own invariants in ``__post_init__``, so a group, and the ``Settings``
that composes them, is always valid; every refusal is a ``ValueError`` whose
message names the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from registry.core.quantity import parse_duration, parse_size

StorageBackend = Literal["filesystem", "s3"]
_Q = TypeVar("_Q", int, float)

_S3_MAX_PRESIGN_SECONDS = 7 * 24 * 3600.0  # S3 signs URLs for at most 7 days
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@dataclass(frozen=True, slots=True)
class SettingSource:
    """The values settings are read from: a flag (``flags``, keyed by the lowercase
    setting name such as ``data_dir``) wins over ``RELIQUARY_<NAME>`` in ``env``;
    a flag that is ``None`` was not given."""

    env: Mapping[str, str]
    flags: Mapping[str, str | None] = field(default_factory=dict)

    def text(self, name: str, default: str | None = None) -> str | None:
        """The setting's text, or ``default`` when neither flag nor variable is set."""
        flag = self.flags.get(name)
        if flag is not None:
            return flag
        return self.env.get(env_variable(name), default)

    def size(self, name: str, default: int) -> int:
        """A byte size (``512MiB``); ``default`` when unset.

        Raises:
            ValueError: the text is not a size (the message names the variable).
        """
        return self._quantity(name, parse_size, default)

    def duration(self, name: str, default: float) -> float:
        """A duration in seconds (``24h``); ``default`` when unset.

        Raises:
            ValueError: the text is not a duration (the message names the variable).
        """
        return self._quantity(name, parse_duration, default)

    def _quantity(self, name: str, parse: Callable[[str], _Q], default: _Q) -> _Q:
        text = self.text(name)
        try:
            return default if text is None else parse(text)
        except ValueError as exc:
            raise ValueError(f"{env_variable(name)}: {exc}") from exc


def env_variable(name: str) -> str:
    """The environment variable of a setting: ``data_dir`` -> ``RELIQUARY_DATA_DIR``."""
    return f"RELIQUARY_{name.upper()}"


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str
    pool_size: int = 10

    @classmethod
    def from_env(cls, source: SettingSource, data_dir: Path) -> DatabaseSettings:
        """``RELIQUARY_DATABASE_URL``; the embedded SQLite file in ``data_dir`` when unset."""
        return cls(url=source.text("database_url") or f"sqlite:///{data_dir / 'registry.db'}")


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where blobs live. Invariants: an S3 backend names its bucket; presigned
    redirects (``s3_redirect_seconds`` > 0) need S3 and last 1 minute to 7 days."""

    backend: StorageBackend
    root: Path  # filesystem backend
    s3_bucket: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_prefix: str = ""
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_redirect_seconds: float = 0.0  # > 0: blob GETs redirect to presigned URLs this long
    s3_public_endpoint_url: str | None = None  # what clients reach S3 at, for those URLs

    def __post_init__(self) -> None:
        redirect = self.s3_redirect_seconds
        if redirect and self.backend != "s3":
            raise ValueError("RELIQUARY_S3_REDIRECT needs RELIQUARY_STORAGE=s3")
        if redirect and not 60 <= redirect <= _S3_MAX_PRESIGN_SECONDS:
            raise ValueError(
                "RELIQUARY_S3_REDIRECT must be between 1m (clocks drift) and 7d (S3's limit)"
            )
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("RELIQUARY_S3_BUCKET is required when RELIQUARY_STORAGE=s3")

    @classmethod
    def from_env(cls, source: SettingSource, data_dir: Path) -> StorageSettings:
        """``RELIQUARY_STORAGE``, ``RELIQUARY_BLOB_DIR`` and ``RELIQUARY_S3_*``.

        Raises:
            ValueError: an unknown backend, an unreadable redirect, or a broken invariant.
        """
        backend_name = source.text("storage", "filesystem")
        backend: StorageBackend
        if backend_name == "filesystem":
            backend = "filesystem"
        elif backend_name == "s3":
            backend = "s3"
        else:
            raise ValueError(
                f"RELIQUARY_STORAGE must be 'filesystem' or 's3', not {backend_name!r}"
            )
        return cls(
            backend=backend,
            root=Path(source.text("blob_dir") or data_dir / "blobs").absolute(),
            s3_bucket=source.text("s3_bucket", "") or "",
            s3_endpoint_url=source.text("s3_endpoint_url"),
            s3_region=source.text("s3_region"),
            s3_prefix=source.text("s3_prefix", "") or "",
            s3_access_key_id=source.text("s3_access_key_id"),
            s3_secret_access_key=source.text("s3_secret_access_key"),
            s3_redirect_seconds=source.duration("s3_redirect", 0.0),
            s3_public_endpoint_url=source.text("s3_public_endpoint_url"),
        )


def _check_header_timeout(seconds: float) -> None:
    if not 0.1 <= seconds <= 3600:
        raise ValueError("RELIQUARY_HEADER_TIMEOUT must be between 100ms and 1h")


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Request limits. Invariant: request headers get between 100 ms and 1 h."""

    max_blob_bytes: int = 64 * 2**30
    max_manifest_bytes: int = 4 * 2**20
    max_chunk_bytes: int = 512 * 2**20
    upload_ttl_seconds: float = 24 * 3600.0
    max_json_body_bytes: int = 1 * 2**20
    header_timeout_seconds: float = 10.0  # a connection's request headers must arrive within this

    def __post_init__(self) -> None:
        _check_header_timeout(self.header_timeout_seconds)

    @classmethod
    def from_env(cls, source: SettingSource) -> LimitSettings:
        """``RELIQUARY_MAX_*_SIZE``, ``RELIQUARY_UPLOAD_TTL``, ``RELIQUARY_HEADER_TIMEOUT``.

        Raises:
            ValueError: a size or duration cannot be read, or the header timeout is out of range.
        """
        defaults = cls()
        upload_ttl = source.duration("upload_ttl", defaults.upload_ttl_seconds)
        header_timeout = source.duration("header_timeout", defaults.header_timeout_seconds)
        _check_header_timeout(header_timeout)  # refused before any size is read, as always
        return cls(
            upload_ttl_seconds=upload_ttl,
            header_timeout_seconds=header_timeout,
            max_blob_bytes=source.size("max_blob_size", defaults.max_blob_bytes),
            max_manifest_bytes=source.size("max_manifest_size", defaults.max_manifest_bytes),
            max_chunk_bytes=source.size("max_chunk_size", defaults.max_chunk_bytes),
            max_json_body_bytes=source.size("max_json_body_size", defaults.max_json_body_bytes),
        )


@dataclass(frozen=True, slots=True)
class AuthSettings:
    anonymous_reads: bool = False
    token_cache_seconds: float = 2.0
    # the URL clients reach the registry at, when a proxy stands in front (TLS ends
    # there): the /v2 login challenge names <public_url>/v2/token; None: the request's
    public_url: str | None = None

    @classmethod
    def from_env(cls, source: SettingSource) -> AuthSettings:
        """``RELIQUARY_ANONYMOUS_READS`` (true/false, 1/0, yes/no), ``RELIQUARY_TOKEN_CACHE_TTL``,
        ``RELIQUARY_PUBLIC_URL`` (``https://registry.example.org``).

        Raises:
            ValueError: a value cannot be read.
        """
        anonymous = (source.text("anonymous_reads", "false") or "false").lower()
        if anonymous not in _TRUE + _FALSE:
            raise ValueError(f"RELIQUARY_ANONYMOUS_READS must be true or false, not {anonymous!r}")
        public_url = source.text("public_url")
        if public_url is not None and not re.fullmatch(
            r"https?://[A-Za-z0-9.:\[\]_-]+/?", public_url
        ):
            raise ValueError(
                f"RELIQUARY_PUBLIC_URL must be http(s)://HOST[:PORT] (no path), not {public_url!r}"
            )
        return cls(
            anonymous_reads=anonymous in _TRUE,
            token_cache_seconds=source.duration("token_cache_ttl", cls().token_cache_seconds),
            public_url=None if public_url is None else public_url.rstrip("/"),
        )


@dataclass(frozen=True, slots=True)
class LogSettings:
    origin: str  # the checkpoint origin line and note key name
    key_file: Path  # Ed25519 private key (PKCS8 PEM) that signs checkpoints
    witness_file: Path  # the largest tree signed, outside the database (log/witness.py)

    @classmethod
    def from_env(cls, source: SettingSource, data_dir: Path) -> LogSettings:
        """``RELIQUARY_LOG_ORIGIN``, ``RELIQUARY_LOG_KEY_FILE`` (``<data_dir>/log-key.pem``)
        and ``RELIQUARY_LOG_WITNESS_FILE`` (next to the key, ``.witness.json``)."""
        key = Path(source.text("log_key_file") or data_dir / "log-key.pem").absolute()
        witness_file = source.text("log_witness_file")
        witness = (
            Path(witness_file).absolute() if witness_file else key.with_suffix(".witness.json")
        )
        return cls(source.text("log_origin") or "reliquary.local/log", key, witness)


@dataclass(frozen=True, slots=True)
class PolicySettings:
    file: Path | None  # TOML promotion policy; None: channels have no requirements

    @classmethod
    def from_env(cls, source: SettingSource) -> PolicySettings:
        """``RELIQUARY_POLICY_FILE``; unset or empty: no policy."""
        path = source.text("policy_file")
        return cls(file=Path(path).absolute() if path else None)


@dataclass(frozen=True, slots=True)
class JobSettings:
    """Verification job queue. Invariant: a job is attempted 1 to 100 times."""

    lease_seconds: float = 300.0  # a worker heartbeats well within this; expiry requeues
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 100:
            raise ValueError(
                f"RELIQUARY_JOB_MAX_ATTEMPTS must be 1..100, not {str(self.max_attempts)!r}"
            )

    @classmethod
    def from_env(cls, source: SettingSource) -> JobSettings:
        """``RELIQUARY_JOB_LEASE`` and ``RELIQUARY_JOB_MAX_ATTEMPTS``.

        Raises:
            ValueError: a value cannot be read or the attempts are out of range.
        """
        defaults = cls()
        lease = source.duration("job_lease", defaults.lease_seconds)
        attempts = source.text("job_max_attempts") or str(defaults.max_attempts)
        if not attempts.isdigit() or not 1 <= int(attempts) <= 100:  # named as written
            raise ValueError(f"RELIQUARY_JOB_MAX_ATTEMPTS must be 1..100, not {attempts!r}")
        return cls(lease_seconds=lease, max_attempts=int(attempts))


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database: DatabaseSettings
    storage: StorageSettings
    log: LogSettings
    policy: PolicySettings = field(default_factory=lambda: PolicySettings(None))
    limits: LimitSettings = field(default_factory=LimitSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    jobs: JobSettings = field(default_factory=JobSettings)

    @property
    def embedded(self) -> bool:
        """True on the embedded default (SQLite): the registry may create its own log key."""
        return self.database.url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: str | None) -> Settings:
        """Build settings from ``RELIQUARY_*`` variables; ``overrides`` (flag values) win.

        Override keys are the lowercase setting names (``data_dir``, ``database_url``).

        Raises:
            ValueError: a value cannot be read (the message names the variable).
        """
        source = SettingSource(dict(os.environ if env is None else env), overrides)
        data_dir = Path(source.text("data_dir", "./.reliquary") or "./.reliquary").absolute()
        # groups that can refuse a value are read in this order: with several bad values,
        # the first one named is the same as it always was
        database = DatabaseSettings.from_env(source, data_dir)
        storage = StorageSettings.from_env(source, data_dir)
        limits = LimitSettings.from_env(source)
        auth = AuthSettings.from_env(source)
        jobs = JobSettings.from_env(source)
        return cls(
            data_dir=data_dir,
            database=database,
            storage=storage,
            log=LogSettings.from_env(source, data_dir),
            policy=PolicySettings.from_env(source),
            limits=limits,
            auth=auth,
            jobs=jobs,
        )
