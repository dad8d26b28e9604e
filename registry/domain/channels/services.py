"""Release channels: policy status, promote, rollback, history.

Invariants:
- A channel of a name points at one artifact of that name. Promote moves it to
  any digest whose every policy requirement is met; rollback moves it back to a
  digest the channel held before (default: the one before the current), with a
  reason. Nothing is ever deleted: each move is an event and a log entry,
  written in one transaction.
- Moves of all channels serialise on the log's head lock, taken before the
  current pointer is read, so two racing promotes cannot both see "current".
- The policy in force is logged (``policy.changed``) whenever its version
  differs from the last one logged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from registry.core.digest import Digest
from registry.core.manifest import validate_name
from registry.core.policy import Policy, channel_problem, evaluate
from registry.db.models import ChannelEventRow, ChannelRow
from registry.domain.artifacts.services import ArtifactService
from registry.domain.channels.evidence import Evidence
from registry.domain.channels.repositories import ChannelRepository
from registry.domain.channels.schemas import (
    ChannelEvent,
    ChannelPointer,
    ChannelStatus,
    HistoryPage,
)
from registry.domain.channels.verification import profile_states
from registry.domain.jobs.services import JobService
from registry.domain.log.repositories import LogRepository
from registry.domain.log.services import TransparencyLog
from registry.errors import (
    ChannelNotFoundError,
    InvalidRequestError,
    PolicyUnmetError,
    RollbackTargetError,
)

MAX_PAGE = 500


def _event(row: ChannelEventRow) -> ChannelEvent:
    return ChannelEvent(
        log_index=row.log_index,
        name=row.name,
        channel=row.channel,
        action=row.action,
        from_digest=None if row.from_digest is None else f"blake3:{row.from_digest}",
        to_digest=f"blake3:{row.to_digest}",
        reason=row.reason,
        by=row.token_id,
        at=row.created_at,
    )


def _check(name: str, channel: str, reason: str | None = None) -> None:
    problems = validate_name(name) + [p for p in [channel_problem(channel)] if p]
    if reason is not None and not (len(reason.strip()) > 0 and len(reason) <= 1024):
        problems.append("a reason (1..1024 characters) is required")
    if problems:
        raise InvalidRequestError("; ".join(problems))


class ChannelService:
    def __init__(
        self,
        artifacts: ArtifactService,
        evidence: Evidence,
        jobs: JobService,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        log: TransparencyLog,
        policy: Policy,
    ) -> None:
        self._artifacts = artifacts
        self._evidence = evidence
        self._jobs = jobs
        self._writes = writes
        self._reads = reads
        self._log = log
        self.policy = policy

    def record_policy(self) -> int | None:
        """Log the policy in force if it differs from the last one logged; the index."""
        with self._writes.begin() as session:
            LogRepository(session).lock_head()
            last = LogRepository(session).last_of_kind("policy.changed")
            if last is not None and json.loads(last.entry).get("version") == self.policy.version:
                return None
            return self._log.append(session, "policy.changed", {"version": self.policy.version})

    def _current(self, session: Session, name: str, channel: str) -> Digest | None:
        row = ChannelRepository(session).get(name, channel)
        return None if row is None else Digest.blake3(row.digest)

    def status(self, ref: Digest, channel: str) -> ChannelStatus:
        """Every requirement of ``channel``'s policy for ``ref``. Raises ArtifactNotFoundError."""
        stored = self._artifacts.manifest(ref)
        name = stored.name
        _check(name, channel)
        with self._reads() as session:
            current = self._current(session, name, channel)
            revoked = self._artifacts.revoked_reason(session, stored.digest)
        facts = self._evidence.facts(
            stored.digest, channel, current, revoked, self._jobs.refusals(stored.digest)
        )
        rules = self.policy.for_channel(channel)
        requirements = evaluate(rules, facts)
        return ChannelStatus(
            digest=str(stored.digest),
            channel=channel,
            policy_version=self.policy.version,
            promotable=all(r.met for r in requirements),
            requirements=[r.to_dict() for r in requirements],
            verification=profile_states(
                [r.profile for r in rules.reproducibility],
                facts.reproducibility,
                self._jobs.of_artifact(stored.digest),
            ),
        )

    def promote(
        self, name: str, channel: str, ref: Digest, reason: str, token_id: str | None
    ) -> ChannelEvent:
        """Point ``channel`` at ``ref`` if the policy allows.

        Raises:
            ArtifactNotFoundError; InvalidRequestError (names, reason, or an artifact of
            another name); PolicyUnmetError listing every requirement.
        """
        _check(name, channel, reason)
        stored = self._artifacts.manifest(ref)
        if stored.name != name:
            raise InvalidRequestError(
                f"{stored.digest} is an artifact of {stored.name}, not of {name}"
            )
        with self._writes.begin() as session:
            LogRepository(session).lock_head()
            current = self._current(session, name, channel)
            revoked = self._artifacts.revoked_reason(session, stored.digest)
            facts = self._evidence.facts(
                stored.digest, channel, current, revoked, self._jobs.refusals(stored.digest)
            )
            requirements = evaluate(self.policy.for_channel(channel), facts)
            unmet = [r for r in requirements if not r.met]
            if unmet:
                raise PolicyUnmetError(
                    f"{name}:{channel} cannot move to {stored.digest}: "
                    + "; ".join(f"{r.name}: {r.reason}" for r in unmet),
                    requirements=[r.to_dict() for r in requirements],
                    policy_version=self.policy.version,
                )
            return self._move(
                session, "promote", name, channel, current, stored.digest, reason, token_id
            )

    def rollback(
        self, name: str, channel: str, ref: Digest | None, reason: str, token_id: str | None
    ) -> ChannelEvent:
        """Move ``channel`` back to a digest it held before (default: the previous one).

        Raises:
            ChannelNotFoundError; RollbackTargetError; InvalidRequestError.
        """
        _check(name, channel, reason)
        target = None if ref is None else self._artifacts.manifest(ref).digest
        with self._writes.begin() as session:
            LogRepository(session).lock_head()
            current = self._current(session, name, channel)
            if current is None:
                raise ChannelNotFoundError(f"{name} has no channel {channel!r}")
            events = ChannelRepository(session).held(name, channel)
            held = [e.to_digest for e in events]
            if target is None:
                previous = [e.from_digest for e in reversed(events) if e.from_digest]
                if not previous:
                    raise RollbackTargetError(
                        f"{name}:{channel} has no earlier digest to go back to"
                    )
                target = Digest.blake3(previous[0])
            if target.hex not in held:
                raise RollbackTargetError(
                    f"{name}:{channel} never held {target}; roll back only to a digest it held: "
                    + ", ".join(f"blake3:{d}" for d in dict.fromkeys(held)),
                )
            if target == current:
                raise RollbackTargetError(f"{name}:{channel} already points at {target}")
            revoked = self._artifacts.revoked_reason(session, target)
            if revoked is not None:
                raise RollbackTargetError(
                    f"{target} was revoked ({revoked}); a channel never goes back to it"
                )
            return self._move(session, "rollback", name, channel, current, target, reason, token_id)

    def _move(
        self,
        session: Session,
        action: str,
        name: str,
        channel: str,
        old: Digest | None,
        new: Digest,
        reason: str,
        token_id: str | None,
    ) -> ChannelEvent:
        index = self._log.append(
            session,
            f"channel.{action}",
            {
                "name": name,
                "channel": channel,
                "from": None if old is None else str(old),
                "to": str(new),
                "reason": reason,
                "by": token_id,
            },
        )
        now = datetime.now(UTC)
        row = ChannelRepository(session).get(name, channel)
        if row is None:
            session.add(
                ChannelRow(
                    name=name, channel=channel, digest=new.hex, updated_at=now, log_index=index
                )
            )
        else:
            row.digest, row.updated_at, row.log_index = new.hex, now, index
        event = ChannelEventRow(
            log_index=index,
            name=name,
            channel=channel,
            action=action,
            from_digest=None if old is None else old.hex,
            to_digest=new.hex,
            reason=reason,
            token_id=token_id,
            created_at=now,
        )
        session.add(event)
        session.flush()
        return _event(event)

    def pointers(self, name: str) -> list[ChannelPointer]:
        _check(name, "x")
        with self._reads() as session:
            return [
                ChannelPointer(
                    name=r.name,
                    channel=r.channel,
                    digest=f"blake3:{r.digest}",
                    updated_at=r.updated_at,
                    log_index=r.log_index,
                )
                for r in ChannelRepository(session).of_name(name)
            ]

    def resolve(self, name: str, channel: str) -> Digest:
        """Raises ChannelNotFoundError."""
        _check(name, channel)
        with self._reads() as session:
            current = self._current(session, name, channel)
        if current is None:
            raise ChannelNotFoundError(f"{name} has no channel {channel!r}")
        return current

    def history(
        self, name: str, channel: str | None, cursor: str | None, limit: int
    ) -> HistoryPage:
        _check(name, channel or "x")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be 1..{MAX_PAGE}")
        if cursor is not None and not cursor.isdigit():
            raise InvalidRequestError("cursor is not one this registry issued")
        before = None if cursor is None else int(cursor)
        with self._reads() as session:
            rows = ChannelRepository(session).history(name, channel, before, limit + 1)
        events = [_event(r) for r in rows[:limit]]
        next_cursor = str(rows[limit - 1].log_index) if len(rows) > limit else None
        return HistoryPage(events=events, next_cursor=next_cursor)
