"""Registry settings: frozen groups filled from flags or ``RELIQUARY_*`` variables.

Every setting has one name, used as ``--kebab-case`` flag and as
``RELIQUARY_UPPER_CASE`` environment variable. Sizes and durations carry units
(``10GiB``, ``24h``). A ``Settings`` object is always valid.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from registry.core.quantity import parse_duration, parse_size

StorageBackend = Literal["filesystem", "s3"]


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str
    pool_size: int = 10


@dataclass(frozen=True, slots=True)
class StorageSettings:
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


@dataclass(frozen=True, slots=True)
class LimitSettings:
    max_blob_bytes: int = 64 * 2**30
    max_manifest_bytes: int = 4 * 2**20
    max_chunk_bytes: int = 512 * 2**20
    upload_ttl_seconds: float = 24 * 3600.0
    max_json_body_bytes: int = 1 * 2**20
    header_timeout_seconds: float = 10.0  # a connection's request headers must arrive within this


@dataclass(frozen=True, slots=True)
class AuthSettings:
    anonymous_reads: bool = False
    token_cache_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class LogSettings:
    origin: str  # the checkpoint origin line and note key name
    key_file: Path  # Ed25519 private key (PKCS8 PEM) that signs checkpoints
    witness_file: Path  # the largest tree signed, outside the database (log/witness.py)


def _log_settings(
    origin: str | None, key_file: str | None, witness_file: str | None, data_dir: Path
) -> LogSettings:
    key = Path(key_file or data_dir / "log-key.pem").absolute()
    witness = Path(witness_file).absolute() if witness_file else key.with_suffix(".witness.json")
    return LogSettings(origin or "reliquary.local/log", key, witness)


@dataclass(frozen=True, slots=True)
class PolicySettings:
    file: Path | None  # TOML promotion policy; None: channels have no requirements


@dataclass(frozen=True, slots=True)
class JobSettings:
    lease_seconds: float = 300.0  # a worker heartbeats well within this; expiry requeues
    max_attempts: int = 3


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
        source = dict(os.environ if env is None else env)

        def get(name: str, default: str | None = None) -> str | None:
            flag = overrides.get(name)
            if flag is not None:
                return flag
            return source.get(f"RELIQUARY_{name.upper()}", default)

        data_dir = Path(get("data_dir", "./.reliquary") or "./.reliquary").absolute()
        database_url = get("database_url") or f"sqlite:///{data_dir / 'registry.db'}"
        backend_name = get("storage", "filesystem")
        if backend_name == "filesystem":
            backend: StorageBackend = "filesystem"
        elif backend_name == "s3":
            backend = "s3"
        else:
            raise ValueError(
                f"RELIQUARY_STORAGE must be 'filesystem' or 's3', not {backend_name!r}"
            )
        redirect_text = get("s3_redirect")
        try:
            redirect = 0.0 if redirect_text is None else parse_duration(redirect_text)
        except ValueError as exc:
            raise ValueError(f"RELIQUARY_S3_REDIRECT: {exc}") from exc
        if redirect and backend != "s3":
            raise ValueError("RELIQUARY_S3_REDIRECT needs RELIQUARY_STORAGE=s3")
        if redirect and not 60 <= redirect <= 7 * 24 * 3600:  # S3 signs for at most 7 days
            raise ValueError(
                "RELIQUARY_S3_REDIRECT must be between 1m (clocks drift) and 7d (S3's limit)"
            )
        storage = StorageSettings(
            backend=backend,
            root=Path(get("blob_dir") or data_dir / "blobs").absolute(),
            s3_bucket=get("s3_bucket", "") or "",
            s3_endpoint_url=get("s3_endpoint_url"),
            s3_region=get("s3_region"),
            s3_prefix=get("s3_prefix", "") or "",
            s3_access_key_id=get("s3_access_key_id"),
            s3_secret_access_key=get("s3_secret_access_key"),
            s3_redirect_seconds=redirect,
            s3_public_endpoint_url=get("s3_public_endpoint_url"),
        )
        if backend == "s3" and not storage.s3_bucket:
            raise ValueError("RELIQUARY_S3_BUCKET is required when RELIQUARY_STORAGE=s3")
        defaults = LimitSettings()

        def size(name: str, default: int) -> int:
            text = get(name)
            try:
                return default if text is None else parse_size(text)
            except ValueError as exc:
                raise ValueError(f"RELIQUARY_{name.upper()}: {exc}") from exc

        ttl_text = get("upload_ttl")
        try:
            ttl = defaults.upload_ttl_seconds if ttl_text is None else parse_duration(ttl_text)
        except ValueError as exc:
            raise ValueError(f"RELIQUARY_UPLOAD_TTL: {exc}") from exc
        header_timeout_text = get("header_timeout")
        try:
            header_timeout = (
                defaults.header_timeout_seconds
                if header_timeout_text is None
                else parse_duration(header_timeout_text)
            )
        except ValueError as exc:
            raise ValueError(f"RELIQUARY_HEADER_TIMEOUT: {exc}") from exc
        if not 0.1 <= header_timeout <= 3600:
            raise ValueError("RELIQUARY_HEADER_TIMEOUT must be between 100ms and 1h")
        limits = LimitSettings(
            max_blob_bytes=size("max_blob_size", defaults.max_blob_bytes),
            max_manifest_bytes=size("max_manifest_size", defaults.max_manifest_bytes),
            max_chunk_bytes=size("max_chunk_size", defaults.max_chunk_bytes),
            upload_ttl_seconds=ttl,
            max_json_body_bytes=size("max_json_body_size", defaults.max_json_body_bytes),
            header_timeout_seconds=header_timeout,
        )
        anonymous = (get("anonymous_reads", "false") or "false").lower()
        if anonymous not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"RELIQUARY_ANONYMOUS_READS must be true or false, not {anonymous!r}")
        cache_text = get("token_cache_ttl")
        try:
            token_cache = 2.0 if cache_text is None else parse_duration(cache_text)
        except ValueError as exc:
            raise ValueError(f"RELIQUARY_TOKEN_CACHE_TTL: {exc}") from exc
        lease_text = get("job_lease")
        attempts_text = get("job_max_attempts", "3") or "3"
        try:
            lease = (
                JobSettings().lease_seconds if lease_text is None else parse_duration(lease_text)
            )
        except ValueError as exc:
            raise ValueError(f"RELIQUARY_JOB_LEASE: {exc}") from exc
        if not attempts_text.isdigit() or not 1 <= int(attempts_text) <= 100:
            raise ValueError(f"RELIQUARY_JOB_MAX_ATTEMPTS must be 1..100, not {attempts_text!r}")
        return cls(
            data_dir=data_dir,
            database=DatabaseSettings(url=database_url),
            storage=storage,
            log=_log_settings(
                get("log_origin"), get("log_key_file"), get("log_witness_file"), data_dir
            ),
            policy=PolicySettings(
                file=None if not get("policy_file") else Path(str(get("policy_file"))).absolute()
            ),
            limits=limits,
            auth=AuthSettings(
                anonymous_reads=anonymous in ("true", "1", "yes"), token_cache_seconds=token_cache
            ),
            jobs=JobSettings(lease_seconds=lease, max_attempts=int(attempts_text)),
        )
