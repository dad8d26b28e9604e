"""Release channels: policy status, promote, rollback, history.

Invariants:
- A channel of a name points at one artifact of that name. Promote moves it to
  any digest whose every policy requirement is met; rollback moves it back to a
  digest the channel held before (default: the one before the current), with a
  reason. Nothing is ever deleted: each move is an event and a log entry,
  written in one transaction.
- Moves of all channels serialise on the log's head lock, taken before the
  current pointer is read, so two racing promotes cannot both see "current".
- A pointer is served, compared against or moved from only once it is proven to be
  the channel's latest logged move (``ChannelLedger``); rollback targets are the
  digests the log says the channel held. A disagreement is refused (503), never served.
- The policy in force is logged (``policy.changed``) whenever its version
  differs from the last one logged; its version includes the digests of the datasets
  it names (``PolicyInForce``).
- An evaluate job's task (``plan``) is what the policy in force says when it is
  claimed: the dataset's digest, the thresholds, and the channel's holder (proven like
  any pointer) with its own agreed predictions on that dataset.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from registry.core.digest import Digest
from registry.core.jobs import JobTask
from registry.core.manifest import validate_name
from registry.core.numbers import parse_decimal
from registry.core.policy import Facts, channel_problem, evaluate
from registry.db.models import ChannelEventRow, ChannelRow
from registry.domain.artifacts.services import ArtifactService
from registry.domain.channels.evidence import ChannelHolder, Evidence, Measuring
from registry.domain.channels.findings import profile_states
from registry.domain.channels.ledger import ChannelLedger, horizon
from registry.domain.channels.measured import evaluation_state
from registry.domain.channels.policy import PolicyInForce
from registry.domain.channels.repositories import ChannelRepository
from registry.domain.channels.schemas import (
    ChannelEvent,
    ChannelPointer,
    ChannelStatus,
    HistoryPage,
)
from registry.domain.jobs.schemas import EvaluationTask
from registry.domain.jobs.services import JobService
from registry.domain.log.services import LogEntry, TransparencyLog
from registry.errors import (
    ChannelNotFoundError,
    InvalidRequestError,
    LogIntegrityError,
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
        actor=row.actor,
        keyid=row.keyid,
        at=row.created_at,
    )


def _as_logged(row: ChannelEventRow, entry: LogEntry | None) -> None:
    """A history row says what its log entry says. Raises LogIntegrityError."""
    doc = {} if entry is None else entry.document()
    to = f"blake3:{row.to_digest}"
    expected: dict[str, str | None]
    if row.action == "nondeterministic":
        expected = {"kind": "verification.nondeterministic", "name": row.name, "artifact": to}
    else:
        old = None if row.from_digest is None else f"blake3:{row.from_digest}"
        expected = {
            "kind": f"channel.{row.action}",
            "name": row.name,
            "channel": row.channel,
            "from": old,
            "to": to,
            "reason": row.reason,
            "by": row.token_id,
        }
    wrong = sorted(k for k, v in expected.items() if doc.get(k) != v)
    if wrong:
        raise LogIntegrityError(
            f"the history row at log index {row.log_index} of {row.name} is not what that "
            f"log entry records ({', '.join(wrong)} differ): the database was edited; "
            "refusing to serve it. Run `reliquary-server fsck`",
            name=row.name,
            log_index=row.log_index,
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
        policy: PolicyInForce,
    ) -> None:
        self._artifacts = artifacts
        self._evidence = evidence
        self._jobs = jobs
        self._writes = writes
        self._reads = reads
        self._log = log
        self.in_force = policy
        self.policy = policy.policy
        self._ledger = ChannelLedger(log)

    def record_policy(self) -> int | None:
        """Log the policy in force if it differs from the last one logged; the index."""
        with self._writes.begin() as session:
            return self.in_force.record(session)

    def dataset(self, channel: str) -> str | None:
        """The digest of the dataset ``channel``'s evaluation names, if it resolves now."""
        evaluation = self.policy.for_channel(channel).evaluation
        if evaluation is None or evaluation.dataset is None:
            return None
        facts = self.in_force.dataset(evaluation.dataset, evaluation.dataset_digest)
        return facts.digest if facts.problem is None else None

    def holder(self, name: str, channel: str) -> Digest | None:
        """What ``name:channel`` holds now, proven against the log. Raises
        LogIntegrityError."""
        with self._reads() as session:
            return self._current(session, name, channel)

    def measured(self, artifact: Digest, channel: str, baseline: Digest | None) -> int:
        """How many worker keys measured ``artifact`` on ``channel``'s dataset, comparing
        with ``baseline``: a request for more is refused once ``min_workers`` did."""
        evaluation = self.policy.for_channel(channel).evaluation
        dataset = self.dataset(channel)
        if evaluation is None or evaluation.profile is None or dataset is None:
            return 0
        against = None if baseline is None else str(baseline)
        return len(self._evidence.measured_by(artifact, evaluation.profile, dataset, against))

    def plan(self, artifact: Digest, channel: str, baseline: Digest | None) -> EvaluationTask | str:
        """What an evaluate job of ``artifact`` for ``channel`` measures now, or why it
        cannot (``JobService`` fails such a job with these words). Raises LogIntegrityError."""
        evaluation = self.policy.for_channel(channel).evaluation
        if evaluation is None or evaluation.dataset is None or evaluation.profile is None:
            return f"channel {channel!r}'s policy has no evaluation measured by workers"
        ref = evaluation.dataset
        dataset = self.in_force.dataset(ref, evaluation.dataset_digest)
        if dataset.digest is None:
            return (
                f"the policy's dataset {ref} is not in this registry: push it (reliquary push "
                f"DIR --kind dataset --name {ref.name} --version {ref.version}), then "
                f"`reliquary verify {artifact} --evaluate --channel {channel}`"
            )
        if dataset.problem is not None:
            return f"the policy's dataset {ref} cannot serve: {dataset.problem}"
        agreed = (
            None
            if baseline is None
            else self._evidence.agreed_measurement(baseline, evaluation.profile, dataset.digest)
        )
        return EvaluationTask(
            dataset=dataset.digest,
            dataset_ref=str(ref),
            min_samples=evaluation.min_samples,
            thresholds=evaluation.threshold_rules(),
            baseline=None if baseline is None else str(baseline),
            baseline_predictions=None if agreed is None else agreed.predictions,
            tolerance=None if evaluation.drift is None else evaluation.drift.tolerance,
        )

    def _current(self, session: Session, name: str, channel: str) -> Digest | None:
        """The channel's pointer, proven to be its latest logged move (``ChannelLedger``).
        Raises LogIntegrityError."""
        size = self._log.size_in(session)
        row = ChannelRepository(session).get(name, channel)
        self._ledger.refresh(session)  # after the row: it holds the row's move
        return self._ledger.check(name, channel, row, horizon(size, row))

    def disagreements(self) -> list[str]:
        """Every channel whose pointer and log disagree, explained (empty: all agree)."""
        problems: list[str] = []
        with self._reads() as session:
            size = self._log.size_in(session)
            rows = {(r.name, r.channel): r for r in ChannelRepository(session).every()}
            try:
                self._ledger.refresh(session)
            except LogIntegrityError as exc:
                return [exc.detail]
        for name, channel in sorted({*rows, *self._ledger.channels()}):
            row = rows.get((name, channel))
            try:
                self._ledger.check(name, channel, row, horizon(size, row))
            except LogIntegrityError as exc:
                problems.append(exc.detail)
        return problems

    def _facts(
        self,
        digest: Digest,
        channel: str,
        current: Digest | None,
        revoked: str | None,
        session: Session | None,
    ) -> Facts:
        """The evidence about ``digest`` that ``channel``'s policy is evaluated against.
        The pointer of a runtime image's channel is proven like ``_current``, in
        ``session`` (a promote's locked transaction) or, when None, a read of its own.
        Raises LogIntegrityError."""
        rules = self.policy.for_channel(channel)
        image_channel = rules.runtime_image_channel
        holder: ChannelHolder | None = None
        if image_channel is not None:

            def holder(image: str) -> Digest | None:
                if session is not None:
                    return self._current(session, image, image_channel)
                with self._reads() as fresh:
                    return self._current(fresh, image, image_channel)

        evaluation = rules.evaluation
        measuring = None
        if evaluation is not None and evaluation.measured and evaluation.dataset is not None:
            measuring = Measuring(
                evaluation,
                self.in_force.dataset(evaluation.dataset, evaluation.dataset_digest),
                tuple(self._jobs.evaluation_refusals(digest, channel)),
            )
        return self._evidence.facts(
            digest,
            channel,
            current,
            revoked,
            self._jobs.refusals(digest),
            runtime_image=rules.require_runtime_image,
            image_channel=holder,
            measuring=measuring,
        )

    def status(self, ref: Digest, channel: str) -> ChannelStatus:
        """Every requirement of ``channel``'s policy for ``ref``. Raises ArtifactNotFoundError."""
        stored = self._artifacts.manifest(ref)
        name = stored.name
        _check(name, channel)
        with self._reads() as session:
            current = self._current(session, name, channel)
            revoked = self._artifacts.revoked_reason(session, stored.digest)
        facts = self._facts(stored.digest, channel, current, revoked, None)
        rules = self.policy.for_channel(channel)
        requirements = evaluate(rules, facts)
        jobs = self._jobs.of_artifact(stored.digest)
        return ChannelStatus(
            digest=str(stored.digest),
            channel=channel,
            policy_version=self.in_force.version,
            promotable=all(r.met for r in requirements),
            requirements=[r.to_dict() for r in requirements],
            verification=profile_states(
                [r.profile for r in rules.reproducibility],
                facts.reproducibility,
                [j for j in jobs if j.task == JobTask.REPRODUCE],
            ),
            evaluation=evaluation_state(
                rules, facts, requirements, [j for j in jobs if j.channel == channel]
            ),
        )

    def promote(
        self,
        name: str,
        channel: str,
        ref: Digest,
        reason: str,
        token_id: str | None,
        actor: str | None = None,
    ) -> ChannelEvent:
        """Point ``channel`` at ``ref`` if the policy allows; if it already points there,
        answer the move that put it there (nothing is logged).

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
            self._log.lock_head(session)
            current = self._current(session, name, channel)
            revoked = self._artifacts.revoked_reason(session, stored.digest)
            facts = self._facts(stored.digest, channel, current, revoked, session)
            requirements = evaluate(self.policy.for_channel(channel), facts)
            unmet = [r for r in requirements if not r.met]
            if unmet:
                raise PolicyUnmetError(
                    f"{name}:{channel} cannot move to {stored.digest}: "
                    + "; ".join(f"{r.name}: {r.reason}" for r in unmet),
                    requirements=[r.to_dict() for r in requirements],
                    policy_version=self.in_force.version,
                )
            if current == stored.digest:  # a retried promote: the move it made, nothing new
                moved = ChannelRepository(session).event(
                    self._ledger.moves(name, channel)[-1].index
                )
                if moved is not None:
                    return _event(moved)
            return self._move(
                session, "promote", (name, channel), current, stored.digest, reason, token_id, actor
            )

    def rollback(
        self,
        name: str,
        channel: str,
        ref: Digest | None,
        reason: str,
        token_id: str | None,
        actor: str | None = None,
    ) -> ChannelEvent:
        """Move ``channel`` back to a digest it held before (default: the previous one).

        Raises:
            ChannelNotFoundError; RollbackTargetError; InvalidRequestError.
        """
        _check(name, channel, reason)
        target = None if ref is None else self._artifacts.manifest(ref).digest
        with self._writes.begin() as session:
            self._log.lock_head(session)
            current = self._current(session, name, channel)
            if current is None:
                raise ChannelNotFoundError(f"{name} has no channel {channel!r}")
            moves = self._ledger.moves(name, channel)  # as logged, checked by _current
            held = [m.to_hex for m in moves]
            if target is None:
                previous = [m.from_hex for m in reversed(moves) if m.from_hex]
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
            return self._move(
                session, "rollback", (name, channel), current, target, reason, token_id, actor
            )

    def _move(
        self,
        session: Session,
        action: str,
        where: tuple[str, str],
        old: Digest | None,
        new: Digest,
        reason: str,
        token_id: str | None,
        actor: str | None,
    ) -> ChannelEvent:
        name, channel = where
        fields: dict[str, object] = {
            "name": name,
            "channel": channel,
            "from": None if old is None else str(old),
            "to": str(new),
            "reason": reason,
            "by": token_id,
        }
        if actor:
            fields["actor"] = actor
        index = self._log.append(session, f"channel.{action}", fields)
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
            actor=actor or None,
        )
        session.add(event)
        session.flush()
        return _event(event)

    def pointers(self, name: str) -> list[ChannelPointer]:
        """Every channel of ``name``, each proven against the log. Raises LogIntegrityError."""
        _check(name, "x")
        with self._reads() as session:
            size = self._log.size_in(session)
            rows = {r.channel: r for r in ChannelRepository(session).of_name(name)}
            self._ledger.refresh(session)  # after the rows: it holds their moves
        logged = {c for n, c in self._ledger.channels() if n == name}
        for channel in sorted({*rows, *logged}):
            row = rows.get(channel)
            self._ledger.check(name, channel, row, horizon(size, row))
        return [
            ChannelPointer(
                name=r.name,
                channel=r.channel,
                digest=f"blake3:{r.digest}",
                updated_at=r.updated_at,
                log_index=r.log_index,
            )
            for r in rows.values()
        ]

    def resolve(self, name: str, channel: str) -> Digest:
        """The digest ``name:channel`` points at: its latest logged move, an artifact of
        ``name``. Raises ChannelNotFoundError, LogIntegrityError."""
        _check(name, channel)
        with self._reads() as session:
            current = self._current(session, name, channel)
        if current is None:
            raise ChannelNotFoundError(f"{name} has no channel {channel!r}")
        held = self._artifacts.manifest(current).name
        if held != name:  # promote never allows it: the database was edited
            raise LogIntegrityError(
                f"{name}:{channel} points at {current}, an artifact of {held}; refusing to "
                "serve it: run `reliquary-server fsck`",
                name=name,
                channel=channel,
            )
        return current

    def history(
        self, name: str, channel: str | None, cursor: str | None, limit: int
    ) -> HistoryPage:
        _check(name, channel or "x")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be 1..{MAX_PAGE}")
        before = None if cursor is None else parse_decimal(cursor, "cursor")
        with self._reads() as session:
            rows = ChannelRepository(session).history(name, channel, before, limit + 1)
            logged = self._log.bound_at(session, [r.log_index for r in rows[:limit]])
        for row in rows[:limit]:
            _as_logged(row, logged.get(row.log_index))
        events = [_event(r) for r in rows[:limit]]
        next_cursor = str(rows[limit - 1].log_index) if len(rows) > limit else None
        return HistoryPage(events=events, next_cursor=next_cursor)
