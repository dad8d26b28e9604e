"""Release channels and their promote/rollback history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.checks import hex64
from registry.db.models import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(63), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        hex64("channels", "digest"),
        sa.ForeignKeyConstraint(
            ["digest"], ["artifacts.digest"], name="fk_channels_digest_artifacts"
        ),
        sa.PrimaryKeyConstraint("name", "channel", name="pk_channels"),
    )
    op.create_table(
        "channel_events",
        sa.Column("log_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(63), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_digest", sa.String(64), nullable=True),
        sa.Column("to_digest", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "action IN ('promote', 'rollback')", name="ck_channel_events_action_known"
        ),
        sa.ForeignKeyConstraint(
            ["to_digest"], ["artifacts.digest"], name="fk_channel_events_to_digest_artifacts"
        ),
        sa.PrimaryKeyConstraint("log_index", name="pk_channel_events"),
    )
    op.create_index(
        "ix_channel_events_name_channel", "channel_events", ["name", "channel", "log_index"]
    )


def downgrade() -> None:
    op.drop_table("channel_events")
    op.drop_table("channels")
