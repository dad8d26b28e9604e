"""Transparency-log rows: entries, perfect-subtree nodes, and the head row appends lock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from sqlalchemy import TextClause, insert, select, text, update
from sqlalchemy.orm import Session

from registry.db.models import LogEntryRow, LogHeadRow, LogNodeRow


@lru_cache(maxsize=256)
def _nodes_query(count: int) -> TextClause:
    pairs = " OR ".join(f"(level = :l{i} AND idx = :i{i})" for i in range(count))
    return text(f"SELECT level, idx, hash FROM log_nodes WHERE {pairs}")  # noqa: S608 (no input)


def _params(batch: list[tuple[int, int]]) -> dict[str, int]:
    params: dict[str, int] = {}
    for i, (level, idx) in enumerate(batch):
        params[f"l{i}"], params[f"i{i}"] = level, idx
    return params


# built once: constructing a statement costs more than running it on SQLite. Writes are
# Core statements on the tables (no unit of work: an append is three statements).
_SIZE = select(LogHeadRow.size).where(LogHeadRow.id == 1)
_LOCK_HEAD = _SIZE.with_for_update()
_ADVANCE = (
    update(LogHeadRow)
    .where(LogHeadRow.id == 1)
    .values(size=LogHeadRow.size + 1)
    .returning(LogHeadRow.size)
)
_INSERT_ENTRY = insert(LogEntryRow)
_INSERT_NODES = insert(LogNodeRow)


class LogRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> int:
        """The log size, holding the head row until the transaction ends.

        PostgreSQL takes a row lock (``FOR UPDATE``); SQLite's write transactions
        are already exclusive (``BEGIN IMMEDIATE``), so appends never interleave.
        """
        size = self.session.scalar(_LOCK_HEAD)
        if size is None:
            raise RuntimeError("log_head row is missing: run `reliquary-server db upgrade`")
        return size

    def advance(self) -> int:
        """Take the next index (the size before), holding the head row until the
        transaction ends: one ``UPDATE … RETURNING`` both locks and grows the head."""
        size = self.session.connection().execute(_ADVANCE).scalar()
        if size is None:
            raise RuntimeError("log_head row is missing: run `reliquary-server db upgrade`")
        return int(size) - 1

    def size(self) -> int:
        return self.session.scalar(_SIZE) or 0

    def add(
        self,
        index: int,
        kind: str,
        entry: bytes,
        created_at: datetime,
        nodes: list[tuple[int, int, bytes]],
    ) -> None:
        """Insert an entry and the subtree nodes it completes (always at least its leaf)."""
        connection = self.session.connection()
        connection.execute(
            _INSERT_ENTRY, {"idx": index, "kind": kind, "entry": entry, "created_at": created_at}
        )
        connection.execute(
            _INSERT_NODES, [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in nodes]
        )

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored nodes among ``keys``, in one primary-key lookup per key.

        Spelled as ``(level = ? AND idx = ?) OR …``: SQLite answers a row-value
        ``IN`` list with a full table scan (0.5 s at 10^6 entries), this with index
        probes; PostgreSQL is equally fast either way.
        """
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(wanted), 200):
            batch = wanted[start : start + 200]
            rows = self.session.execute(_nodes_query(len(batch)), _params(batch))
            for level, idx, digest in rows:
                found[(level, idx)] = bytes(digest)
        return found

    def entries(self, start: int, end: int) -> list[LogEntryRow]:
        return list(
            self.session.scalars(
                select(LogEntryRow)
                .where(LogEntryRow.idx >= start, LogEntryRow.idx < end)
                .order_by(LogEntryRow.idx)
            )
        )

    def at(self, indexes: list[int]) -> list[LogEntryRow]:
        """The entries at ``indexes`` (those that exist)."""
        found: list[LogEntryRow] = []
        for start in range(0, len(indexes), 500):
            batch = indexes[start : start + 500]
            found += self.session.scalars(select(LogEntryRow).where(LogEntryRow.idx.in_(batch)))
        return found

    def of_kinds_after(self, kinds: tuple[str, ...], after: int) -> list[LogEntryRow]:
        """Entries of ``kinds`` with index > ``after``, oldest first (index (kind, idx))."""
        return list(
            self.session.scalars(
                select(LogEntryRow)
                .where(LogEntryRow.kind.in_(kinds), LogEntryRow.idx > after)
                .order_by(LogEntryRow.idx)
            )
        )

    def last_of_kind(self, kind: str) -> LogEntryRow | None:
        return self.session.scalar(
            select(LogEntryRow)
            .where(LogEntryRow.kind == kind)
            .order_by(LogEntryRow.idx.desc())
            .limit(1)
        )
