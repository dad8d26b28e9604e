"""Initial schema: blobs, resumable uploads, artifacts, tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.checks import hex64
from registry.db.models import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("blake3", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        hex64("blobs", "blake3"),
        hex64("blobs", "sha256"),
        sa.CheckConstraint("size_bytes >= 0", name="ck_blobs_size_nonnegative"),
        sa.PrimaryKeyConstraint("blake3", name="pk_blobs"),
        sa.UniqueConstraint("sha256", name="uq_blobs_sha256"),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("offset_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.CheckConstraint("offset_bytes >= 0", name="ck_uploads_offset_nonnegative"),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
    )
    op.create_index("ix_uploads_expires_at", "uploads", ["expires_at"])
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("offset_bytes", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("part_name", sa.String(64), nullable=False),
        sa.CheckConstraint("size_bytes > 0", name="ck_upload_parts_size_positive"),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["uploads.id"],
            name="fk_upload_parts_upload_id_uploads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "offset_bytes", name="pk_upload_parts"),
    )
    op.create_table(
        "artifacts",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        hex64("artifacts", "digest"),
        hex64("artifacts", "sha256"),
        sa.PrimaryKeyConstraint("digest", name="pk_artifacts"),
        sa.UniqueConstraint("name", "version", name="uq_artifacts_name_version"),
        sa.UniqueConstraint("sha256", name="uq_artifacts_sha256"),
    )
    op.create_index("ix_artifacts_created_digest", "artifacts", ["created_at", "digest"])
    op.create_index("ix_artifacts_kind", "artifacts", ["kind"])
    op.create_table(
        "artifact_blobs",
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("blob_blake3", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_digest"],
            ["artifacts.digest"],
            name="fk_artifact_blobs_artifact_digest_artifacts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["blob_blake3"], ["blobs.blake3"], name="fk_artifact_blobs_blob_blake3_blobs"
        ),
        sa.PrimaryKeyConstraint("artifact_digest", "blob_blake3", name="pk_artifact_blobs"),
    )
    op.create_index("ix_artifact_blobs_blob_blake3", "artifact_blobs", ["blob_blake3"])
    op.create_table(
        "artifact_labels",
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_digest"],
            ["artifacts.digest"],
            name="fk_artifact_labels_artifact_digest_artifacts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("artifact_digest", "key", name="pk_artifact_labels"),
    )
    op.create_index("ix_artifact_labels_key_value", "artifact_labels", ["key", "value"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        hex64("tokens", "secret_sha256"),
        sa.CheckConstraint(
            "role IN ('admin', 'publisher', 'worker', 'governor', 'reader')",
            name="ck_tokens_role_known",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("secret_sha256", name="uq_tokens_secret_sha256"),
    )


def downgrade() -> None:
    for table in (
        "tokens",
        "artifact_labels",
        "artifact_blobs",
        "artifacts",
        "upload_parts",
        "uploads",
        "blobs",
    ):
        op.drop_table(table)
