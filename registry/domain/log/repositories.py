"""Transparency-log rows: entries, perfect-subtree nodes, and the head row appends lock."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from registry.db.models import LogEntryRow, LogHeadRow, LogNodeRow


class LogRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> int:
        """The log size, holding the head row until the transaction ends.

        PostgreSQL takes a row lock (``FOR UPDATE``); SQLite's write transactions
        are already exclusive (``BEGIN IMMEDIATE``), so appends never interleave.
        """
        size = self.session.scalar(
            select(LogHeadRow.size).where(LogHeadRow.id == 1).with_for_update()
        )
        if size is None:
            raise RuntimeError("log_head row is missing: run `reliquary-server db upgrade`")
        return size

    def size(self) -> int:
        return self.session.scalar(select(LogHeadRow.size).where(LogHeadRow.id == 1)) or 0

    def set_size(self, size: int) -> None:
        self.session.execute(update(LogHeadRow).where(LogHeadRow.id == 1).values(size=size))

    def add(self, entry: LogEntryRow, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        self.session.add(entry)
        self.session.add_all(LogNodeRow(level=lv, idx=ix, hash=h) for lv, ix, h in nodes)
        self.session.flush()

    def nodes(self, keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        wanted = list(keys)
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(wanted), 200):
            batch = wanted[start : start + 200]
            rows = self.session.execute(
                select(LogNodeRow.level, LogNodeRow.idx, LogNodeRow.hash).where(
                    tuple_(LogNodeRow.level, LogNodeRow.idx).in_(batch)
                )
            )
            for level, idx, digest in rows:
                found[(level, idx)] = digest
        return found

    def entries(self, start: int, end: int) -> list[LogEntryRow]:
        return list(
            self.session.scalars(
                select(LogEntryRow)
                .where(LogEntryRow.idx >= start, LogEntryRow.idx < end)
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
