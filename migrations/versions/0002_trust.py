"""Trust: signing keys, attestations, and the transparency log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.checks import hex64
from registry.db.models import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("keyid", sa.String(64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(1024), nullable=True),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        hex64("signing_keys", "keyid"),
        sa.CheckConstraint(
            "role IN ('publisher', 'worker', 'governor')", name="ck_signing_keys_role_known"
        ),
        sa.PrimaryKeyConstraint("keyid", name="pk_signing_keys"),
    )
    op.create_table(
        "attestations",
        sa.Column("envelope_sha256", sa.String(64), nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("predicate_type", sa.String(128), nullable=False),
        sa.Column("keyid", sa.String(64), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        hex64("attestations", "envelope_sha256"),
        sa.ForeignKeyConstraint(
            ["artifact_digest"],
            ["artifacts.digest"],
            name="fk_attestations_artifact_digest_artifacts",
        ),
        sa.ForeignKeyConstraint(
            ["keyid"], ["signing_keys.keyid"], name="fk_attestations_keyid_signing_keys"
        ),
        sa.PrimaryKeyConstraint("envelope_sha256", name="pk_attestations"),
    )
    op.create_index(
        "ix_attestations_artifact_predicate", "attestations", ["artifact_digest", "predicate_type"]
    )
    op.create_index("ix_attestations_keyid", "attestations", ["keyid"])
    op.create_table(
        "log_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("idx >= 0", name="ck_log_entries_idx_nonnegative"),
        sa.PrimaryKeyConstraint("idx", name="pk_log_entries"),
    )
    op.create_index("ix_log_entries_kind", "log_entries", ["kind"])
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_log_nodes"),
    )
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_log_head_single_row"),
        sa.PrimaryKeyConstraint("id", name="pk_log_head"),
    )
    op.execute("INSERT INTO log_head (id, size) VALUES (1, 0)")


def downgrade() -> None:
    for table in ("log_head", "log_nodes", "log_entries", "attestations", "signing_keys"):
        op.drop_table(table)
