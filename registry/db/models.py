"""SQLAlchemy models: the schema Alembic migrations build (``migrations/versions``).

Invariants enforced by the database itself:
- digest columns hold 64 lowercase hex characters (check constraints, per dialect);
- a blob row exists only for bytes already published in the blob store;
- ``(name, version)`` binds one artifact digest, forever (unique constraint);
- an artifact references every blob its manifest names (``artifact_blobs``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from registry.core.jobs import MAX_ERROR_CHARS, JobState, JobTask
from registry.core.roles import KEY_ROLES, Role

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JobStateColumn(TypeDecorator[JobState]):
    """A ``JobState`` stored as its string value."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: JobState | None, dialect: Dialect) -> str | None:
        return None if value is None else JobState(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> JobState | None:
        return None if value is None else JobState(value)


def hex64_checks(*columns: str) -> list[CheckConstraint]:
    """Check constraints that each column is 64 lowercase hex, for both dialects."""
    checks: list[CheckConstraint] = []
    for column in columns:
        checks.append(
            CheckConstraint(f"{column} ~ '^[0-9a-f]{{64}}$'", name=f"{column}_hex_pg").ddl_if(
                dialect="postgresql"
            )
        )
        checks.append(
            CheckConstraint(
                f"length({column}) = 64 AND {column} NOT GLOB '*[^0-9a-f]*'",
                name=f"{column}_hex_sqlite",
            ).ddl_if(dialect="sqlite")
        )
    return checks


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class BlobRow(Base):
    __tablename__ = "blobs"
    __table_args__ = (
        *hex64_checks("blake3", "sha256"),
        CheckConstraint("size_bytes >= 0", name="size_nonnegative"),
    )

    blake3: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UploadRow(Base):
    __tablename__ = "uploads"
    __table_args__ = (CheckConstraint("offset_bytes >= 0", name="offset_nonnegative"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    offset_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    token_id: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(255))  # an OCI session's repository


class UploadPartRow(Base):
    __tablename__ = "upload_parts"
    __table_args__ = (
        CheckConstraint("size_bytes > 0", name="size_positive"),
        *hex64_checks("blake3", "sha256"),
    )

    upload_id: Mapped[str] = mapped_column(
        ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True
    )
    offset_bytes: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    part_name: Mapped[str] = mapped_column(String(64))
    # the part's own digests, hashed as it streamed in (a part at offset 0 only): a lone
    # such part is the whole blob, published without reading it again
    blake3: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64))


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        *hex64_checks("digest", "sha256"),
        UniqueConstraint("name", "version", name="uq_artifacts_name_version"),
        Index("ix_artifacts_created_digest", "created_at", "digest"),
    )

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # blake3 hex
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # sum of file sizes
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    token_id: Mapped[str | None] = mapped_column(String(32))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(1024))


class ArtifactBlobRow(Base):
    __tablename__ = "artifact_blobs"

    artifact_digest: Mapped[str] = mapped_column(
        ForeignKey("artifacts.digest", ondelete="CASCADE"), primary_key=True
    )
    blob_blake3: Mapped[str] = mapped_column(
        ForeignKey("blobs.blake3"), primary_key=True, index=True
    )


class ArtifactLabelRow(Base):
    __tablename__ = "artifact_labels"
    __table_args__ = (Index("ix_artifact_labels_key_value", "key", "value"),)

    artifact_digest: Mapped[str] = mapped_column(
        ForeignKey("artifacts.digest", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))


class TokenRow(Base):
    __tablename__ = "tokens"
    __table_args__ = (
        *hex64_checks("secret_sha256"),
        CheckConstraint(
            "role IN ('admin', 'publisher', 'worker', 'governor', 'reader')", name="role_known"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (
        *hex64_checks("keyid"),
        CheckConstraint(
            "role IN (" + ", ".join(f"'{r.value}'" for r in Role if r in KEY_ROLES) + ")",
            name="role_known",
        ),
    )

    keyid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw 32-byte Ed25519
    role: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(1024))
    log_index: Mapped[int] = mapped_column(BigInteger)


class AttestationRow(Base):
    __tablename__ = "attestations"
    __table_args__ = (
        *hex64_checks("envelope_sha256"),
        Index("ix_attestations_artifact_predicate", "artifact_digest", "predicate_type"),
        Index("ux_attestations_statement_sha256", "statement_sha256", unique=True),
    )

    envelope_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    artifact_digest: Mapped[str] = mapped_column(ForeignKey("artifacts.digest"))
    predicate_type: Mapped[str] = mapped_column(String(128))
    keyid: Mapped[str] = mapped_column(ForeignKey("signing_keys.keyid"), index=True)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    log_index: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    token_id: Mapped[str | None] = mapped_column(String(32))
    statement_sha256: Mapped[str | None] = mapped_column(String(64))
    """``dsse.statement_sha256`` of what was signed: one row per statement, however
    re-encoded. NULL only on a replay stored before revision 0007 (it counts for nothing)."""


class LogEntryRow(Base):
    """One transparency-log leaf: the exact canonical JSON bytes that were hashed."""

    __tablename__ = "log_entries"
    __table_args__ = (
        CheckConstraint("idx >= 0", name="idx_nonnegative"),
        Index("ix_log_entries_kind_idx", "kind", "idx"),  # moves of a kind since an index
    )

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LogNodeRow(Base):
    """A perfect subtree's hash: level 0 are leaf hashes (see registry.core.merkle)."""

    __tablename__ = "log_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class LogHeadRow(Base):
    """The single row appends lock: the log's current size."""

    __tablename__ = "log_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)


class ChannelRow(Base):
    """Where a release channel of a name points now."""

    __tablename__ = "channels"
    __table_args__ = (*hex64_checks("digest"),)

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    channel: Mapped[str] = mapped_column(String(63), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("artifacts.digest"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    log_index: Mapped[int] = mapped_column(BigInteger)


class ChannelEventRow(Base):
    """One promote or rollback, or a nondeterminism finding (channel ``*``), forever;
    its log entry has the same index."""

    __tablename__ = "channel_events"
    __table_args__ = (
        CheckConstraint(
            "action IN ('promote', 'rollback', 'nondeterministic')", name="action_known"
        ),
        Index("ix_channel_events_name_channel", "name", "channel", "log_index"),
    )

    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(16))
    from_digest: Mapped[str | None] = mapped_column(String(64))
    to_digest: Mapped[str] = mapped_column(ForeignKey("artifacts.digest"))
    reason: Mapped[str] = mapped_column(String(1024))
    token_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(255))  # the token's description
    keyid: Mapped[str | None] = mapped_column(String(64))  # the key whose statement caused it


class JobRow(Base):
    """One verification job: a worker of ``profile`` must reproduce this artifact, or
    (``task`` evaluate) measure it on ``channel``'s evaluation dataset."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s.value}'" for s in JobState) + ")", name="state_known"
        ),
        CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name="attempts_bounded"),
        CheckConstraint(
            "task IN (" + ", ".join(f"'{t.value}'" for t in JobTask) + ")", name="task_known"
        ),
        Index("ix_jobs_claimable", "state", "profile", "created_at"),
        Index("ix_jobs_artifact_profile", "artifact_digest", "profile"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    artifact_digest: Mapped[str] = mapped_column(ForeignKey("artifacts.digest"))
    profile: Mapped[str] = mapped_column(String(64))
    state: Mapped[JobState] = mapped_column(JobStateColumn())
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    worker_token: Mapped[str | None] = mapped_column(String(32))
    worker_name: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(MAX_ERROR_CHARS))  # the worker's words
    # failed because the engine refused an op it cannot run deterministically (a finding)
    refused_nondeterministic: Mapped[bool] = mapped_column(Boolean, server_default=false())
    attestation_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # what the worker is asked: reproduce reference inputs, or evaluate on a dataset
    task: Mapped[str] = mapped_column(String(16), server_default=JobTask.REPRODUCE.value)
    channel: Mapped[str | None] = mapped_column(String(64))  # evaluate: whose policy
    # evaluate: what the channel held when the job was made (hex), to compare with
    baseline: Mapped[str | None] = mapped_column(String(64))


# -- OCI distribution (``registry/domain/oci``) --------------------------------------
class OciManifestRow(Base):
    """An OCI or Docker manifest, kept as the exact bytes pushed (also a blob, so an image
    layout can name it); ``sha256`` of those bytes is its OCI digest."""

    __tablename__ = "oci_manifests"
    __table_args__ = (*hex64_checks("sha256", "blake3"),)

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    blake3: Mapped[str] = mapped_column(ForeignKey("blobs.blake3"))
    media_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    artifact_type: Mapped[str | None] = mapped_column(String(255))
    subject_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OciRepositoryManifestRow(Base):
    """A repository holds a manifest (pushed there by tag or by digest); never removed."""

    __tablename__ = "oci_repository_manifests"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("oci_manifests.sha256"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OciRepositoryBlobRow(Base):
    """A repository holds a blob (uploaded, mounted into it, or named by its manifests);
    never removed. A blob is served and mountable only from repositories that hold it."""

    __tablename__ = "oci_repository_blobs"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    blake3: Mapped[str] = mapped_column(ForeignKey("blobs.blake3"), primary_key=True)


class OciTagRow(Base):
    """A tag names one manifest of its repository forever (tags are versions)."""

    __tablename__ = "oci_tags"
    __table_args__ = (*hex64_checks("sha256"),)

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    tag: Mapped[str] = mapped_column(String(128), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("oci_manifests.sha256"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
