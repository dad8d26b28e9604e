"""Channel pointers bound to the transparency log.

The ``channels`` table is a cache of the log: the pointer a channel serves must be
the ``to`` of that channel's latest logged move (``channel.promote`` /
``channel.rollback``), at that entry's index, and the entry must be the leaf the
tree holds (``TransparencyLog.bound_entries``). A pointer edited in the database,
or a move whose row was lost, is refused with ``LogIntegrityError`` (503) instead
of served; ``reliquary-server fsck`` lists every disagreement.

Invariants:
- The ledger reads each move entry once per process: it remembers the moves it has
  read and the highest index it read, and asks the database only for moves logged
  since (one range query on ``(kind, idx)``, nothing when no channel moved).
- It is refreshed only from sessions that see committed entries alone (a read, or a
  write transaction before its own appends), so a rolled-back move never enters it.
- Rollback targets come from the logged moves, not from the editable history table.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from sqlalchemy.orm import Session

from registry.core.digest import Digest
from registry.db.models import ChannelRow
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


def _parse(index: int, entry: bytes) -> tuple[tuple[str, str], Move]:
    try:
        doc = json.loads(entry)
        key = (str(doc["name"]), str(doc["channel"]))
        old = doc.get("from")
        return key, Move(index, None if old is None else _hex(old, index), _hex(doc["to"], index))
    except (ValueError, KeyError, TypeError) as exc:
        raise LogIntegrityError(f"log entry {index} is not a readable channel move: {exc}") from exc


class ChannelLedger:
    """Every channel's moves as the log records them, read incrementally."""

    def __init__(self, log: TransparencyLog) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._seen = -1
        self._moves: dict[tuple[str, str], list[Move]] = {}

    def refresh(self, session: Session) -> None:
        """Read the moves logged since the last refresh (committed entries only).

        Raises:
            LogIntegrityError: an entry is not its leaf, or not a readable move.
        """
        with self._lock:
            after = self._seen
        found = [
            (*_parse(e.index, e.entry), e.index)
            for e in self._log.bound_entries(session, MOVES, after)
        ]
        with self._lock:
            for key, move, index in found:
                if index > self._seen:  # another thread may have read it meanwhile
                    self._moves.setdefault(key, []).append(move)
                    self._seen = index

    def moves(self, name: str, channel: str) -> list[Move]:
        """The logged moves of ``name:channel``, oldest first (as of the last refresh)."""
        with self._lock:
            return list(self._moves.get((name, channel), ()))

    def channels(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._moves)

    def check(self, name: str, channel: str, row: ChannelRow | None) -> Digest | None:
        """The digest ``row`` points at, proven to be the channel's latest logged move
        (None: the channel was never moved).

        Raises:
            LogIntegrityError: the row and the log disagree.
        """
        moves = self.moves(name, channel)
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
