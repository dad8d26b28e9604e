"""Channel pointers bound to the transparency log.

The ``channels`` table is a cache of the log: the pointer a channel serves must be
the ``to`` of that channel's latest logged move (``channel.promote`` /
``channel.rollback``), at that entry's index, and the entry must be the leaf the
tree holds (``TransparencyLog.bound_entries``). A pointer edited in the database,
or a move whose row was lost, is refused with ``LogIntegrityError`` (503) instead
of served; ``reliquary-server fsck`` lists every disagreement.

Invariants:
- The ledger follows the log (``LogFollower``): each move entry is read once per
  process, only committed ones, in log order.
- Rollback targets come from the logged moves, not from the editable history table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from registry.core.digest import Digest
from registry.db.models import ChannelRow
from registry.domain.log.follower import LogFollower
from registry.domain.log.services import TransparencyLog
from registry.errors import LogIntegrityError

MOVES = ("channel.promote", "channel.rollback")
_FSCK = "run `reliquary-server fsck` and restore the database from a good backup"


@dataclass(frozen=True, slots=True)
class Move:
    """One logged move of a channel."""

    index: int
    from_hex: str | None
    to_hex: str


def _hex(value: object, index: int) -> str:
    if not isinstance(value, str) or not value.startswith("blake3:"):
        raise LogIntegrityError(f"log entry {index} is a channel move without a blake3 digest")
    return Digest.parse(value).hex


class ChannelLedger:
    """Every channel's moves as the log records them, read incrementally."""

    def __init__(self, log: TransparencyLog) -> None:
        self._moves: dict[tuple[str, str], list[Move]] = {}
        self._follower = LogFollower(log, MOVES, self._apply)

    def _apply(self, index: int, doc: dict[str, Any]) -> None:
        try:
            key = (str(doc["name"]), str(doc["channel"]))
            old = doc.get("from")
            move = Move(index, None if old is None else _hex(old, index), _hex(doc["to"], index))
        except (KeyError, TypeError, ValueError) as exc:
            raise LogIntegrityError(f"log entry {index} is not a readable move: {exc}") from exc
        self._moves.setdefault(key, []).append(move)

    def refresh(self, session: Session) -> None:
        """Read the moves logged since the last refresh (committed entries only).

        Raises:
            LogIntegrityError: an entry is not its leaf, or not a readable move.
        """
        self._follower.refresh(session)

    def moves(self, name: str, channel: str) -> list[Move]:
        """The logged moves of ``name:channel``, oldest first (as of the last refresh)."""
        with self._follower.lock:
            return list(self._moves.get((name, channel), ()))

    def channels(self) -> list[tuple[str, str]]:
        with self._follower.lock:
            return sorted(self._moves)

    def check(self, name: str, channel: str, row: ChannelRow | None, horizon: int) -> Digest | None:
        """The digest ``row`` points at, proven to be the channel's latest logged move
        among entries below ``horizon`` (None: the channel was never moved).

        ``horizon`` is the log size the reader's snapshot saw (``horizon`` below): the
        ledger may already hold moves another thread read from a newer snapshot, which
        the row cannot reflect yet and which must not make a consistent read look wrong.

        Raises:
            LogIntegrityError: the row and the log disagree.
        """
        moves = [m for m in self.moves(name, channel) if m.index < horizon]
        latest = moves[-1] if moves else None
        if row is None and latest is None:
            return None
        if row is None:
            assert latest is not None
            raise LogIntegrityError(
                f"{name}:{channel} has no pointer, but log entry {latest.index} moved it to "
                f"blake3:{latest.to_hex}; refusing to answer for it: {_FSCK}",
                name=name,
                channel=channel,
            )
        if latest is None or (row.digest, row.log_index) != (latest.to_hex, latest.index):
            logged = (
                "the log never moved it"
                if latest is None
                else f"the log's latest move of it is to blake3:{latest.to_hex} "
                f"(entry {latest.index})"
            )
            raise LogIntegrityError(
                f"{name}:{channel} points at blake3:{row.digest} (entry {row.log_index}) but "
                f"{logged}; refusing to serve it: {_FSCK}",
                name=name,
                channel=channel,
            )
        return Digest.blake3(row.digest)


def horizon(size_before: int, row: ChannelRow | None) -> int:
    """The entries a pointer read must agree with: the log size read before the row, or
    up to the row's own move if that committed in between (READ COMMITTED reads each
    statement afresh). The ledger is refreshed after the row, so it holds that move."""
    return size_before if row is None else max(size_before, row.log_index + 1)
