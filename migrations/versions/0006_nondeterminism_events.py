"""Channel history records nondeterminism findings (channel '*', action 'nondeterministic').

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _actions(actions: str) -> None:
    # channel_events is referenced by no table: SQLite may rebuild it
    with op.batch_alter_table("channel_events") as batch:
        batch.drop_constraint("ck_channel_events_action_known", type_="check")
        batch.create_check_constraint("action_known", f"action IN ({actions})")


def upgrade() -> None:
    _actions("'promote', 'rollback', 'nondeterministic'")


def downgrade() -> None:
    op.execute("DELETE FROM channel_events WHERE action = 'nondeterministic'")
    _actions("'promote', 'rollback'")
