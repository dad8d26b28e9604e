"""Settings: each group reads its own variables and refuses a bad value with a message
that names the variable; flags win over the environment; a group built directly keeps
the same invariants as one read from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.settings import (
    AuthSettings,
    DatabaseSettings,
    JobSettings,
    LimitSettings,
    LogSettings,
    PolicySettings,
    Settings,
    SettingSource,
    StorageSettings,
    env_variable,
)

DATA = Path("/srv/reliquary")


def source(**env: str) -> SettingSource:
    return SettingSource({env_variable(name): value for name, value in env.items()})


def test_the_embedded_default_lives_in_the_data_directory() -> None:
    settings = Settings.from_env({"RELIQUARY_DATA_DIR": str(DATA)})
    assert settings.embedded
    assert settings.database == DatabaseSettings(f"sqlite:///{DATA / 'registry.db'}")
    assert settings.storage == StorageSettings("filesystem", DATA / "blobs")
    assert settings.log == LogSettings(
        "reliquary.local/log", DATA / "log-key.pem", DATA / "log-key.witness.json"
    )
    assert settings.policy == PolicySettings(None)
    assert settings.limits == LimitSettings()
    assert settings.auth == AuthSettings()
    assert settings.jobs == JobSettings()


def test_a_flag_wins_over_the_environment_and_an_unset_flag_does_not() -> None:
    env = {"RELIQUARY_DATA_DIR": str(DATA), "RELIQUARY_JOB_LEASE": "1m"}
    settings = Settings.from_env(env, data_dir="/elsewhere", job_lease=None)
    assert settings.data_dir == Path("/elsewhere")
    assert settings.jobs.lease_seconds == 60.0


def test_database_url_names_the_server() -> None:
    url = "postgresql://reliquary@db/reliquary"
    assert DatabaseSettings.from_env(source(database_url=url), DATA).url == url
    assert not Settings.from_env({"RELIQUARY_DATABASE_URL": url}).embedded


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"storage": "gcs"}, "RELIQUARY_STORAGE must be 'filesystem' or 's3', not 'gcs'"),
        ({"storage": "s3"}, "RELIQUARY_S3_BUCKET is required when RELIQUARY_STORAGE=s3"),
        ({"s3_redirect": "5m"}, "RELIQUARY_S3_REDIRECT needs RELIQUARY_STORAGE=s3"),
        (
            {"storage": "s3", "s3_bucket": "b", "s3_redirect": "30s"},
            "RELIQUARY_S3_REDIRECT must be between 1m (clocks drift) and 7d (S3's limit)",
        ),
        (
            {"storage": "s3", "s3_bucket": "b", "s3_redirect": "8d"},
            "RELIQUARY_S3_REDIRECT must be between 1m (clocks drift) and 7d (S3's limit)",
        ),
        (
            {"storage": "s3", "s3_bucket": "b", "s3_redirect": "soon"},
            "RELIQUARY_S3_REDIRECT: cannot read duration 'soon': use a number with ms, s, m, h or d",
        ),
    ],
)
def test_storage_refuses(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        StorageSettings.from_env(source(**env), DATA)
    assert str(refused.value) == message


def test_storage_reads_s3_and_its_redirect() -> None:
    storage = StorageSettings.from_env(
        source(storage="s3", s3_bucket="blobs", s3_prefix="r/", s3_redirect="15m"), DATA
    )
    assert (storage.backend, storage.s3_bucket, storage.s3_prefix) == ("s3", "blobs", "r/")
    assert storage.s3_redirect_seconds == 900.0
    with pytest.raises(ValueError, match="needs RELIQUARY_STORAGE=s3"):
        StorageSettings("filesystem", DATA, s3_redirect_seconds=900.0)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "max_blob_size",
            "big",
            "RELIQUARY_MAX_BLOB_SIZE: cannot read size 'big': "
            "use a number with B, KB, MB, GB, KiB, MiB, GiB or TiB",
        ),
        (
            "max_json_body_size",
            "-1",
            "RELIQUARY_MAX_JSON_BODY_SIZE: cannot read size '-1': "
            "use a number with B, KB, MB, GB, KiB, MiB, GiB or TiB",
        ),
        (
            "upload_ttl",
            "",
            "RELIQUARY_UPLOAD_TTL: cannot read duration '': use a number with ms, s, m, h or d",
        ),
        ("header_timeout", "50ms", "RELIQUARY_HEADER_TIMEOUT must be between 100ms and 1h"),
        ("header_timeout", "2h", "RELIQUARY_HEADER_TIMEOUT must be between 100ms and 1h"),
    ],
)
def test_limits_refuse(name: str, text: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        LimitSettings.from_env(source(**{name: text}))
    assert str(refused.value) == message


def test_limits_read_units() -> None:
    limits = LimitSettings.from_env(
        source(max_blob_size="3KiB", max_manifest_size="2KB", upload_ttl="1h", header_timeout="5s")
    )
    assert (limits.max_blob_bytes, limits.max_manifest_bytes) == (3 * 2**10, 2000)
    assert (limits.upload_ttl_seconds, limits.header_timeout_seconds) == (3600.0, 5.0)
    with pytest.raises(ValueError, match="RELIQUARY_HEADER_TIMEOUT must be between"):
        LimitSettings(header_timeout_seconds=0.0)


def test_auth_reads_yes_and_no_and_refuses_maybe() -> None:
    assert AuthSettings.from_env(source(anonymous_reads="YES")).anonymous_reads
    assert not AuthSettings.from_env(source(anonymous_reads="0")).anonymous_reads
    assert AuthSettings.from_env(source(token_cache_ttl="0")).token_cache_seconds == 0.0
    with pytest.raises(ValueError) as refused:
        AuthSettings.from_env(source(anonymous_reads="maybe"))
    assert str(refused.value) == "RELIQUARY_ANONYMOUS_READS must be true or false, not 'maybe'"
    with pytest.raises(ValueError, match=r"^RELIQUARY_TOKEN_CACHE_TTL: cannot read duration"):
        AuthSettings.from_env(source(token_cache_ttl="2x"))


def test_the_public_url_is_a_scheme_and_host_only() -> None:
    assert AuthSettings.from_env(source()).public_url is None
    public = AuthSettings.from_env(source(public_url="https://registry.example.org:8443/"))
    assert public.public_url == "https://registry.example.org:8443"
    for bad in ("registry.example.org", "https://r.example.org/v2", 'https://r"x'):
        with pytest.raises(ValueError, match="RELIQUARY_PUBLIC_URL must be http"):
            AuthSettings.from_env(source(public_url=bad))


@pytest.mark.parametrize("text", ["0", "101", "x", "-3"])
def test_jobs_refuse_attempts_out_of_range(text: str) -> None:
    with pytest.raises(ValueError) as refused:
        JobSettings.from_env(source(job_max_attempts=text))
    assert str(refused.value) == f"RELIQUARY_JOB_MAX_ATTEMPTS must be 1..100, not {text!r}"


def test_jobs_read_the_lease() -> None:
    assert JobSettings.from_env(source(job_lease="1s", job_max_attempts="1")) == JobSettings(1.0, 1)
    with pytest.raises(ValueError, match=r"^RELIQUARY_JOB_LEASE: cannot read duration 'nope'"):
        JobSettings.from_env(source(job_lease="nope"))


def test_the_log_witness_sits_next_to_its_key_unless_named() -> None:
    log = LogSettings.from_env(source(log_key_file="/keys/log.pem"), DATA)
    assert (log.key_file, log.witness_file) == (
        Path("/keys/log.pem"),
        Path("/keys/log.witness.json"),
    )
    named = LogSettings.from_env(source(log_origin="o", log_witness_file="/w/witness.json"), DATA)
    assert (named.origin, named.witness_file) == ("o", Path("/w/witness.json"))


def test_an_empty_policy_file_means_no_policy() -> None:
    assert PolicySettings.from_env(source(policy_file="")).file is None
    assert PolicySettings.from_env(source(policy_file="/p.toml")).file == Path("/p.toml")
