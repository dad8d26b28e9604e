"""OCI distribution: manifests, tags and which repository holds what; upload sessions
bound to a repository.

- ``oci_manifests``: exact manifest bytes by sha256 (their blob named by blake3), media
  type, size, ``artifactType`` and ``subject`` (indexed, for referrers).
- ``oci_repository_manifests`` / ``oci_repository_blobs``: a repository holds a manifest
  or a blob; rows are never removed.
- ``oci_tags``: ``(name, tag)`` names one manifest forever.
- ``uploads.name`` (nullable): the repository an OCI upload session was opened in;
  ``/v1`` sessions leave it empty.
- ``upload_parts.blake3`` / ``sha256`` (nullable): a part's own digests, hashed as it
  streamed in, so that a lone part is published without being read again.

Only new tables and nullable columns: old replicas keep working beside this revision,
but serve no /v2, and their ``/v1/uploads`` do not check ``uploads.name`` (a token could
reach its own OCI session through ``/v1`` until they are replaced).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.checks import hex64
from registry.db.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oci_manifests",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("blake3", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("artifact_type", sa.String(255), nullable=True),
        sa.Column("subject_sha256", sa.String(64), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["blake3"], ["blobs.blake3"], name="fk_oci_manifests_blake3_blobs"),
        sa.PrimaryKeyConstraint("sha256", name="pk_oci_manifests"),
        hex64("oci_manifests", "sha256"),
        hex64("oci_manifests", "blake3"),
    )
    op.create_index(
        "ix_oci_manifests_subject_sha256", "oci_manifests", ["subject_sha256"], unique=False
    )
    op.create_table(
        "oci_repository_manifests",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["oci_manifests.sha256"],
            name="fk_oci_repository_manifests_sha256_oci_manifests",
        ),
        sa.PrimaryKeyConstraint("name", "sha256", name="pk_oci_repository_manifests"),
    )
    op.create_table(
        "oci_repository_blobs",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("blake3", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["blake3"], ["blobs.blake3"], name="fk_oci_repository_blobs_blake3_blobs"
        ),
        sa.PrimaryKeyConstraint("name", "blake3", name="pk_oci_repository_blobs"),
    )
    op.create_table(
        "oci_tags",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["oci_manifests.sha256"], name="fk_oci_tags_sha256_oci_manifests"
        ),
        sa.PrimaryKeyConstraint("name", "tag", name="pk_oci_tags"),
        hex64("oci_tags", "sha256"),
    )
    op.add_column("uploads", sa.Column("name", sa.String(255), nullable=True))
    with op.batch_alter_table("upload_parts") as batch:
        batch.add_column(sa.Column("blake3", sa.String(64), nullable=True))
        batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
        for column in ("blake3", "sha256"):
            check = hex64("upload_parts", column)
            batch.create_check_constraint(str(check.name), check.sqltext)


def downgrade() -> None:
    with op.batch_alter_table("upload_parts") as batch:
        for column in ("blake3", "sha256"):
            batch.drop_constraint(str(hex64("upload_parts", column).name), type_="check")
            batch.drop_column(column)
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("name")
    op.drop_table("oci_tags")
    op.drop_table("oci_repository_blobs")
    op.drop_table("oci_repository_manifests")
    op.drop_index("ix_oci_manifests_subject_sha256", table_name="oci_manifests")
    op.drop_table("oci_manifests")
