"""The transparency log: append entries in the caller's transaction, sign checkpoints,
serve entries and proofs.

Invariants:
- Every state change (artifact pushed, attestation accepted, key registered or
  revoked, promote, rollback, policy changed) appends its entry in the same
  database transaction as the change itself: both commit or neither does.
- Appends are serialised by the head row lock, so indexes have no gaps and no
  duplicates whatever the concurrency.
- Entries are canonical JSON that name their own index; a leaf is
  ``H(0x00 || entry)``. Every perfect subtree's hash is stored when it completes,
  so roots and proofs read O(log n) nodes, never the whole log. Committed nodes
  never change, so they are cached in memory once read; an append never fills
  that cache (its transaction may still roll back and its index be reused).
- A checkpoint is signed only for a tree that extends the largest one this registry
  has signed before, as its witness (``witness.py``, outside the database) recorded
  it; the new tree is recorded there before its signature is served. A database
  restored to an older state therefore cannot make the registry sign a shorter log
  or a fork: it refuses (``LogIntegrityError``) naming both sizes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache
from sqlalchemy.orm import Session, sessionmaker

from registry.core import merkle
from registry.core.canonical import canonical_bytes, loads_strict
from registry.core.checkpoint import Checkpoint, NoteSigner
from registry.core.errors import CoreError
from registry.db.models import LogEntryRow
from registry.domain.log.repositories import LogRepository
from registry.domain.log.witness import Witness, Witnessed
from registry.errors import InvalidRequestError, LogIntegrityError

MAX_ENTRIES_PER_PAGE = 1000


class _Stale:
    """A read that another process's newer signature overtook (read again)."""


_STALE = _Stale()
_PLACEHOLDER = bytes(32)


@dataclass(frozen=True, slots=True)
class LogEntry:
    index: int
    kind: str
    entry: bytes  # the exact leaf bytes

    def document(self) -> dict[str, Any]:
        """The entry as the JSON object the registry logged.

        Raises:
            LogIntegrityError: not strict JSON, or not an object (the registry never
                logs one: an entry appended by another writer).
        """
        try:
            doc = loads_strict(self.entry)
        except CoreError as exc:
            raise LogIntegrityError(f"log entry {self.index} is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise LogIntegrityError(f"log entry {self.index} is not a JSON object")
        return doc


class TransparencyLog:
    def __init__(
        self,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        signer: NoteSigner,
        witness: Witness | None = None,
    ) -> None:
        self._writes = writes
        self._reads = reads
        self.signer = signer
        self.witness = witness
        self._nodes: LRUCache[tuple[int, int], bytes] = LRUCache(maxsize=200_000)
        self._lock = threading.Lock()
        self._signed: tuple[int, bytes] | None = None

    # -- writing ----------------------------------------------------------------------
    @staticmethod
    def lock_head(session: Session) -> int:
        """The log size, holding the log head until ``session``'s transaction ends.

        A change that reads state a logged change may alter (keys, channel pointers,
        the policy) takes the head before reading it, so no append commits between
        its reads and its own append. ``append`` takes the head too.
        """
        return LogRepository(session).lock_head()

    def append(self, session: Session, kind: str, fields: dict[str, Any]) -> int:
        """Append an entry inside the caller's write transaction; its index."""
        reserved = {"index", "kind", "time"} & fields.keys()
        if reserved:
            raise ValueError(f"log entry fields {sorted(reserved)} are set by the log itself")
        repo = LogRepository(session)
        index = repo.advance()
        now = datetime.now(UTC)
        entry = canonical_bytes(
            {**fields, "index": index, "kind": kind, "time": now.isoformat(timespec="microseconds")}
        )
        leaf = merkle.leaf_hash(entry)
        # this transaction may roll back: what it reads (its own earlier appends
        # included) must not enter the cache of committed nodes
        reader = self._reader(session, index, "append", remember=False)
        nodes = merkle.completed_nodes(index, leaf, reader)
        repo.add(index, kind, entry, now, nodes)
        return index

    # -- reading ----------------------------------------------------------------------
    def bound_at(self, session: Session, indexes: list[int]) -> dict[int, LogEntry]:
        """The entries at ``indexes`` that exist, each proven to be its tree's leaf.

        Raises:
            LogIntegrityError: an entry's bytes are not its leaf.
        """
        return {e.index: e for e in self._bound(session, LogRepository(session).at(indexes))}

    def bound_entries(self, session: Session, kinds: tuple[str, ...], after: int) -> list[LogEntry]:
        """Entries of ``kinds`` after index ``after``, each proven to be the leaf the tree
        holds at its index (``H(0x00 || entry)`` equals the stored leaf node), so an
        entry edited in the database is refused rather than believed.

        Raises:
            LogIntegrityError: an entry's bytes are not its leaf.
        """
        return self._bound(session, LogRepository(session).of_kinds_after(kinds, after))

    @staticmethod
    def last_of_kind(session: Session, kind: str) -> LogEntry | None:
        """The newest entry of ``kind`` as stored (not proven against its leaf), if any."""
        row = LogRepository(session).last_of_kind(kind)
        return None if row is None else LogEntry(row.idx, row.kind, row.entry)

    @staticmethod
    def _bound(session: Session, rows: list[LogEntryRow]) -> list[LogEntry]:
        leaves = LogRepository(session).nodes((0, r.idx) for r in rows)
        for row in rows:
            if leaves.get((0, row.idx)) != merkle.leaf_hash(row.entry):
                raise LogIntegrityError(
                    f"log entry {row.idx} ({row.kind}) does not hash to the tree's leaf "
                    f"{row.idx}: the database was edited. Run `reliquary-server fsck` and "
                    "restore the database from a backup that `reliquary audit verify --all` passes"
                )
        return [LogEntry(r.idx, r.kind, r.entry) for r in rows]

    def _reader(
        self, session: Session, size: int, what: str, *, remember: bool = True
    ) -> merkle.NodeReader:
        """A NodeReader: cached nodes, else one query per node. ``remember``: cache what
        it reads (only for sessions that see committed nodes alone, i.e. reads)."""
        cache, lock = self._nodes, self._lock

        def get(level: int, index: int) -> bytes:
            with lock:
                hit = cache.get((level, index))
            if hit is not None:
                return hit
            found = LogRepository(session).nodes([(level, index)])
            if (level, index) not in found:
                raise RuntimeError(f"log node {level}/{index} is missing ({what}, size {size})")
            if remember:
                with lock:
                    cache[(level, index)] = found[(level, index)]
            return found[(level, index)]

        return get

    def _prefetch(self, session: Session, plan: list[tuple[int, int]]) -> None:
        with self._lock:
            missing = [k for k in plan if k not in self._nodes]
        if missing:
            found = LogRepository(session).nodes(missing)
            with self._lock:
                for key, value in found.items():
                    self._nodes[key] = value

    @staticmethod
    def _plan(compute: Any) -> list[tuple[int, int]]:
        """The nodes ``compute(get)`` will read (which depends on sizes only, not hashes)."""
        keys: list[tuple[int, int]] = []

        def record(level: int, index: int) -> bytes:
            keys.append((level, index))
            return _PLACEHOLDER

        compute(record)
        return keys

    def size(self) -> int:
        with self._reads() as session:
            return LogRepository(session).size()

    @staticmethod
    def size_in(session: Session) -> int:
        """The log size as ``session`` sees it."""
        return LogRepository(session).size()

    def root(self, size: int) -> bytes:
        with self._reads() as session:
            self._check_size(session, size)
            self._prefetch(session, self._plan(lambda g: merkle.root(size, g)))
            return merkle.root(size, self._reader(session, size, "root"))

    def checkpoint(self) -> bytes:
        """The signed note for the current tree head.

        Raises:
            LogIntegrityError: the database's tree does not extend the largest tree this
                registry signed (its witness): nothing is signed.
        """
        while True:
            with self._reads() as session:
                size = LogRepository(session).size()
                signed = self._signed
                if signed is not None and signed[0] == size:
                    return signed[1]
                root = self._root_in(session, size)
                if self.witness is not None:
                    if isinstance(self._check_witness(session, size, root), _Stale):
                        continue  # another process signed a larger tree since we read
                    self.witness.record(Witnessed(size, root))
            note = self.signer.sign(Checkpoint(origin=self.signer.name, size=size, root=root))
            self._signed = (size, note)
            return note

    def check_witness(self) -> Witnessed | None:
        """At start: the database's tree extends the largest tree witnessed (returned).

        Raises:
            LogIntegrityError: it does not (a restored or damaged database).
        """
        while self.witness is not None:
            with self._reads() as session:
                size = LogRepository(session).size()
                found = self._check_witness(session, size, self._root_in(session, size))
            if not isinstance(found, _Stale):
                return found
        return None

    def _root_in(self, session: Session, size: int) -> bytes:
        self._prefetch(session, self._plan(lambda g: merkle.root(size, g)))
        return merkle.root(size, self._reader(session, size, "root"))

    def _check_witness(self, session: Session, size: int, root: bytes) -> Witnessed | _Stale | None:
        """The largest witnessed tree (None: none yet) if the tree of ``size`` read in
        ``session`` extends it; ``_STALE`` if ``session`` only read too early (another
        process has since grown the log and signed it: read again).

        Raises:
            LogIntegrityError: the database, as it is now, is behind or forks.
        """
        assert self.witness is not None
        try:
            witnessed = self.witness.largest()
        except ValueError as exc:
            raise LogIntegrityError(f"{exc}; refusing to sign a checkpoint") from exc
        if witnessed is None:
            return None
        where = self.witness.describe()
        if size < witnessed.size and self.size() >= witnessed.size:
            return _STALE
        if size < witnessed.size:
            raise LogIntegrityError(
                f"the database's log has {size} entries, but this registry already signed "
                f"a checkpoint of {witnessed.size} entries (witness {where}): the database "
                "is behind (restored from an older backup, or it lost commits). Signing from "
                "it would fork the log. Restore a backup holding at least "
                f"{witnessed.size} entries; if none exists, start a new log (a new key and "
                "RELIQUARY_LOG_ORIGIN) and tell your auditors",
                database_size=size,
                witnessed_size=witnessed.size,
            )
        at = root if size == witnessed.size else self._root_in(session, witnessed.size)
        if at != witnessed.root:
            raise LogIntegrityError(
                f"the database's log of {size} entries does not extend the checkpoint of "
                f"{witnessed.size} entries this registry signed (witness {where}): its first "
                f"{witnessed.size} entries are another history. Restore the database that "
                "signed it; do not serve this one",
                database_size=size,
                witnessed_size=witnessed.size,
            )
        return witnessed

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Raises InvalidRequestError for an index or size the log does not have."""
        if not 0 <= index < size:
            raise InvalidRequestError(f"index must be in [0, size); got index {index}, size {size}")
        with self._reads() as session:
            self._check_size(session, size)
            self._prefetch(session, self._plan(lambda g: merkle.inclusion_proof(index, size, g)))
            return merkle.inclusion_proof(index, size, self._reader(session, size, "inclusion"))

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """Raises InvalidRequestError unless 0 < old_size <= new_size <= log size."""
        if not 0 < old_size <= new_size:
            raise InvalidRequestError(f"need 0 < from <= to; got from {old_size}, to {new_size}")
        with self._reads() as session:
            self._check_size(session, new_size)
            plan = self._plan(lambda g: merkle.consistency_proof(old_size, new_size, g))
            self._prefetch(session, plan)
            return merkle.consistency_proof(
                old_size, new_size, self._reader(session, new_size, "consistency")
            )

    def entries(self, start: int, end: int) -> list[LogEntry]:
        if not 0 <= start < end or end - start > MAX_ENTRIES_PER_PAGE:
            raise InvalidRequestError(
                f"need 0 <= start < end and at most {MAX_ENTRIES_PER_PAGE} entries per request"
            )
        with self._reads() as session:
            rows = LogRepository(session).entries(start, end)
        return [LogEntry(r.idx, r.kind, r.entry) for r in rows]

    @staticmethod
    def _check_size(session: Session, size: int) -> None:
        current = LogRepository(session).size()
        if size > current:
            raise InvalidRequestError(
                f"the log has {current} entries; size {size} is in the future"
            )
