"""A failed job says in a column whether its engine refused to run deterministically.

- ``jobs.refused_nondeterministic`` (boolean, not null, default false): the job failed
  because its engine refused an op it cannot run deterministically (a finding). Before
  this revision that was written into ``last_error`` as a ``nondeterministic: `` prefix.
  Failed rows whose error carries the prefix are backfilled true, a page at a time, and
  their ``last_error`` keeps the worker's words only: the API adds the prefix back when
  it shows the error, so what users see does not change. The downgrade writes the
  prefix back.
- Upgrade with the old replicas stopped: a server older than this revision still writes
  the prefix and leaves the column false, and such a refusal would no longer block its
  artifact (the gate reads the column only).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

log = logging.getLogger("alembic.runtime.migration")

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PREFIX = "nondeterministic: "  # what 0005..0007 wrote before a refused job's error
_PAGE = 1000


def _backfill() -> None:
    """Flag the refusals stored before, and strip their prefix, a page of ids at a time.

    The prefix is compared with ``substr`` (exact and case-sensitive on both dialects,
    where SQLite's ``LIKE`` ignores case)."""
    bind = op.get_bind()
    flagged = 0
    after = ""
    while True:
        ids = (
            bind.execute(
                sa.text(
                    "SELECT id FROM jobs WHERE id > :after AND state = 'failed' "
                    "AND substr(last_error, 1, :n) = :prefix ORDER BY id LIMIT :page"
                ),
                {"after": after, "n": len(_PREFIX), "prefix": _PREFIX, "page": _PAGE},
            )
            .scalars()
            .all()
        )
        if not ids:
            break
        after = ids[-1]
        bind.execute(
            sa.text(
                "UPDATE jobs SET refused_nondeterministic = :true, "
                "last_error = substr(last_error, :start) WHERE id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"true": True, "start": len(_PREFIX) + 1, "ids": list(ids)},
        )
        flagged += len(ids)
    if flagged:
        log.info("0008: %d failed jobs were engine refusals (now a column)", flagged)


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column(
            "refused_nondeterministic", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    _backfill()


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE jobs SET last_error = :prefix || last_error WHERE refused_nondeterministic"
        ).bindparams(prefix=_PREFIX)
    )
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("refused_nondeterministic")
