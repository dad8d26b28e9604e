"""Job rows and the claim query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from registry.db.models import JobRow


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, job_id: str, *, lock: bool = False) -> JobRow | None:
        query = select(JobRow).where(JobRow.id == job_id)
        if lock and self._postgres:
            query = query.with_for_update()
        return self.session.scalar(query)

    @property
    def _postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def next_claimable(
        self, profiles: Sequence[str], token_id: str, now: datetime
    ) -> JobRow | None:
        """The oldest job this worker may take, locked against other claimers.

        Queued jobs, and running ones whose lease expired; never a second job of an
        artifact+profile this worker already holds or attested (distinct workers).
        PostgreSQL skips rows other transactions locked; SQLite writers are serial.
        """
        mine = aliased(JobRow)
        query = (
            select(JobRow)
            .where(
                JobRow.profile.in_(list(profiles)),
                or_(
                    JobRow.state == "queued",
                    and_(JobRow.state == "running", JobRow.lease_expires_at < now),
                ),
                ~exists().where(
                    mine.artifact_digest == JobRow.artifact_digest,
                    mine.profile == JobRow.profile,
                    mine.worker_token == token_id,
                    mine.id != JobRow.id,
                    mine.state.in_(["running", "attested"]),
                ),
            )
            .order_by(JobRow.created_at, JobRow.id)
            .limit(1)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True, of=JobRow)
        return self.session.scalar(query)

    def of_artifact(self, digest_hex: str) -> list[JobRow]:
        return list(
            self.session.scalars(
                select(JobRow)
                .where(JobRow.artifact_digest == digest_hex)
                .order_by(JobRow.profile, JobRow.created_at)
            )
        )
