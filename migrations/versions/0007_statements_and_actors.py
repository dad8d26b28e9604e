"""Attestations are identified by the statement signed; channel events name their actor.

- ``attestations.statement_sha256``: sha256 of the DSSE PAE and the signing keyid
  (``registry.core.dsse.statement_sha256``), unique: any re-encoding of an accepted
  envelope is the same statement. Rows already stored are backfilled in log order;
  a later row repeating an earlier row's statement (a replay accepted before this
  revision) keeps NULL and counts for nothing.
- ``log_entries`` indexed by (kind, idx) instead of kind alone: the channel moves
  since an index are a range scan (channel pointers are checked against the log).
- ``channel_events.actor`` (the token's description when it acted) and
  ``channel_events.keyid`` (the key whose signed statement caused the event).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from registry.core.dsse import Envelope, statement_sha256
from registry.core.errors import CoreError

log = logging.getLogger("alembic.runtime.migration")

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_PAGE = 1000


def _backfill() -> None:
    """Statement ids for the rows stored before, in log order, a page at a time; a row
    whose envelope no longer parses, or that repeats an earlier row's statement (a replay
    accepted before this revision), keeps NULL and counts for nothing."""
    bind = op.get_bind()
    seen: set[str] = set()
    unreadable = repeated = 0
    after = -1
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT envelope_sha256, keyid, envelope, log_index FROM attestations "
                "WHERE log_index > :after ORDER BY log_index LIMIT :page"
            ),
            {"after": after, "page": _PAGE},
        ).all()
        if not rows:
            break
        after = rows[-1][3]
        for envelope_sha256, keyid, raw, _ in rows:
            try:
                envelope = Envelope.from_json(bytes(raw))
            except CoreError:
                unreadable += 1
                continue
            statement = statement_sha256(envelope.payload_type, envelope.payload, keyid)
            if statement in seen:
                repeated += 1
                continue
            seen.add(statement)
            bind.execute(
                sa.text("UPDATE attestations SET statement_sha256 = :s WHERE envelope_sha256 = :e"),
                {"s": statement, "e": envelope_sha256},
            )
    if unreadable or repeated:
        log.warning(
            "0007: %d stored replays and %d unreadable envelopes keep no statement id: "
            "they no longer count as evidence",
            repeated,
            unreadable,
        )


def upgrade() -> None:
    op.add_column("attestations", sa.Column("statement_sha256", sa.String(64), nullable=True))
    _backfill()
    op.create_index(
        "ux_attestations_statement_sha256", "attestations", ["statement_sha256"], unique=True
    )
    op.add_column("channel_events", sa.Column("actor", sa.String(255), nullable=True))
    op.add_column("channel_events", sa.Column("keyid", sa.String(64), nullable=True))
    op.create_index("ix_log_entries_kind_idx", "log_entries", ["kind", "idx"])
    op.drop_index("ix_log_entries_kind", table_name="log_entries")


def downgrade() -> None:
    op.create_index("ix_log_entries_kind", "log_entries", ["kind"])
    op.drop_index("ix_log_entries_kind_idx", table_name="log_entries")
    with op.batch_alter_table("channel_events") as batch:
        batch.drop_column("keyid")
        batch.drop_column("actor")
    op.drop_index("ux_attestations_statement_sha256", table_name="attestations")
    with op.batch_alter_table("attestations") as batch:
        batch.drop_column("statement_sha256")
