"""Following the log: state derived from entries of some kinds, read once per process.

A ``LogFollower`` remembers the highest index it has read and asks the database only
for entries of its kinds logged since (one range query on ``(kind, idx)``), each
proven to be its tree's leaf (``TransparencyLog.bound_entries``), and hands them to
its ``apply`` in log order, exactly once. Callers refresh it only from sessions that
see committed entries alone (a read, or a write transaction before its own appends),
so a rolled-back entry never reaches ``apply``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from registry.domain.log.services import TransparencyLog

Apply = Callable[[int, dict[str, Any]], None]
"""Called with (index, entry as JSON) under the follower's lock; raises LogIntegrityError."""


class LogFollower:
    def __init__(self, log: TransparencyLog, kinds: tuple[str, ...], apply: Apply) -> None:
        self._log = log
        self._kinds = kinds
        self._apply = apply
        self.lock = threading.Lock()
        self._seen = -1

    def refresh(self, session: Session) -> None:
        """Apply the entries logged since the last refresh.

        Raises:
            LogIntegrityError: an entry is not its leaf, or not readable JSON.
        """
        with self.lock:
            after = self._seen
        found = []
        for entry in self._log.bound_entries(session, self._kinds, after):
            found.append((entry.index, entry.document()))
        with self.lock:
            for index, doc in found:
                if index > self._seen:  # another thread may have applied it meanwhile
                    self._apply(index, doc)
                    self._seen = index
