"""Job rows and the claim query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, select
from sqlalchemy.orm import Session, aliased

from registry.core.jobs import JobState
from registry.db.models import JobRow


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, job_id: str, *, lock: bool = False) -> JobRow | None:
        """The job; with ``lock``, its row stays locked until the transaction ends
        (PostgreSQL; SQLite writers are serial)."""
        return self.session.scalar(_GET[lock and self._postgres], {"id": job_id})

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def next_claimable(
        self, profiles: Sequence[str], token_id: str, now: datetime
    ) -> JobRow | None:
        """The job this worker may take next, locked against other claimers.

        First a running job whose lease expired (it has waited longest), else the
        oldest queued one; never a second job of an artifact+profile (+task, channel) this
        worker already holds or attested (distinct workers). Two index-ordered queries
        rather than one with an OR, which SQLite answered by sorting every job;
        both are built once (``_CLAIM``), so a claim pays no query construction.
        PostgreSQL skips rows other transactions locked; SQLite writers are serial.
        """
        params = {"profiles": list(profiles), "token": token_id, "now": now}
        expired, queued = _CLAIM[self._postgres]
        return self.session.scalar(expired, params) or self.session.scalar(queued, params)

    def any_claimable(self, profiles: Sequence[str], token_id: str, now: datetime) -> bool:
        """Whether ``next_claimable`` would find a job now; locks nothing (a cheap read
        for claims that wait)."""
        params = {"profiles": list(profiles), "token": token_id, "now": now}
        expired, queued = _CLAIM[False]
        return any(self.session.scalar(q, params) is not None for q in (expired, queued))

    def of_artifact(self, digest_hex: str) -> list[JobRow]:
        return list(
            self.session.scalars(
                select(JobRow)
                .where(JobRow.artifact_digest == digest_hex)
                .order_by(JobRow.profile, JobRow.created_at)
            )
        )


def _claim_query(state: ColumnElement[bool], lock: bool) -> Select[JobRow]:
    mine = aliased(JobRow, name="mine")
    query = (
        select(JobRow)
        .where(
            state,
            JobRow.profile.in_(bindparam("profiles", expanding=True)),
            ~exists().where(
                mine.artifact_digest == JobRow.artifact_digest,
                mine.profile == JobRow.profile,
                mine.task == JobRow.task,
                mine.channel.is_not_distinct_from(JobRow.channel),
                mine.baseline.is_not_distinct_from(JobRow.baseline),
                mine.worker_token == bindparam("token"),
                mine.id != JobRow.id,
                mine.state.in_([JobState.RUNNING, JobState.ATTESTED]),
            ),
        )
        .order_by(JobRow.created_at, JobRow.id)
        .limit(1)
    )
    return query.with_for_update(skip_locked=True, of=JobRow) if lock else query


_GET = {  # by "lock the row"
    False: select(JobRow).where(JobRow.id == bindparam("id")),
    True: select(JobRow).where(JobRow.id == bindparam("id")).with_for_update(),
}
_EXPIRED = and_(JobRow.state == JobState.RUNNING, JobRow.lease_expires_at < bindparam("now"))
_QUEUED = JobRow.state == JobState.QUEUED
_CLAIM = {  # by "is PostgreSQL": (expired leases, queued)
    lock: (_claim_query(_EXPIRED, lock), _claim_query(_QUEUED, lock)) for lock in (False, True)
}
