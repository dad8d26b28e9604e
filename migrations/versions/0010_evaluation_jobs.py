"""Jobs say what they ask of their worker, and for whose channel.

- ``jobs.task`` (string, not null, default ``'reproduce'``, checked to be ``reproduce``
  or ``evaluate``): ``evaluate`` jobs predict a channel's evaluation dataset and measure
  it (ARCHITECTURE §13); every job stored before this revision reproduced reference
  inputs, which the server default records.
- ``jobs.channel`` (nullable): the channel whose policy names an evaluate job's dataset
  and thresholds; empty for reproduce jobs.
- ``jobs.baseline`` (nullable, hex): the artifact the channel held when an evaluate job
  was made, which the worker compares predictions with (drift); a worker measures an
  artifact once per baseline.

Only a defaulted and a nullable column: old replicas keep working beside this revision,
but they do not know evaluate jobs: upgrade every replica before a policy names an
evaluation dataset (an old replica would hand an evaluate job out as a reproduce job).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("task", sa.String(16), nullable=False, server_default="reproduce")
        )
        batch.add_column(sa.Column("channel", sa.String(64), nullable=True))
        batch.add_column(sa.Column("baseline", sa.String(64), nullable=True))
        batch.create_check_constraint(
            "ck_jobs_task_known", sa.text("task IN ('reproduce', 'evaluate')")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("ck_jobs_task_known", type_="check")
        batch.drop_column("baseline")
        batch.drop_column("channel")
        batch.drop_column("task")
