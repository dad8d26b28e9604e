"""Artifacts can be revoked: never promoted or rolled back to again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from registry.db.models import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN on both dialects: SQLite must not rebuild a table others reference
    op.add_column("artifacts", sa.Column("revoked_at", UTCDateTime(), nullable=True))
    op.add_column("artifacts", sa.Column("revoked_reason", sa.String(1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("revoked_reason")
        batch.drop_column("revoked_at")
