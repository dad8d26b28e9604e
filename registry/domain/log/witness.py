"""The log witness: the largest tree this registry has signed, kept outside its database.

A database restored from a backup (or one that lost commits) holds a shorter log than
checkpoints the registry already published; signing on from it would fork the log
under the same key. So before a checkpoint of a new size is signed, its size and root
are recorded durably where a database restore does not reach, and no checkpoint is
signed (and the server does not start) unless the database's tree extends the largest
one recorded: at least as large, with the recorded root at the recorded size.

Where it is kept:
Records are per log (its note verifier key): a new log key starts a new witness.

- ``FileWitness``: a small JSON file beside the log key (``log-key.witness.json``),
  replaced atomically (write, fsync, rename, fsync the directory) under an exclusive
  ``flock``, so API processes on one host only ever raise it.
- ``StoreWitness`` (S3 deployments): one immutable object per recorded size under
  ``<prefix>_witness/<log id>/`` in the bucket, named by the zero-padded size. Replicas never
  overwrite each other: the largest name is the largest tree any replica signed,
  whatever order their writes land in; older objects beyond the newest few are pruned.

Several API replicas share one database and one bucket: each reads the bucket's
witness before it signs a larger tree, so a replica that started before another
signed further still refuses to sign a shorter (restored) log. Each host's file
witness covers the same for deployments without S3, and a lost bucket prefix for
those with it. The witness is no substitute for auditors: ``reliquary audit
verify`` pins checkpoints on the client side and catches any fork independently.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from registry.errors import ServiceUnavailableError
from registry.storage.s3 import S3BlobStore

KEEP_OBJECTS = 16


def log_id(verifier_key: str) -> str:
    """A short name for one log: the hex sha256 of its note verifier key, 16 digits."""
    return hashlib.sha256(verifier_key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Witnessed:
    """A tree this registry signed: its size and root."""

    size: int
    root: bytes

    def to_json(self, log: str) -> bytes:
        doc = {"log": log, "size": self.size, "root": base64.b64encode(self.root).decode()}
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, log: str, where: str) -> Witnessed | None:
        """The record, or None if it is another log's.

        Raises ValueError naming ``where`` for anything but a record we wrote."""
        try:
            doc = json.loads(data)
            size, root = doc["size"], base64.b64decode(doc["root"], validate=True)
            if doc["log"] != log:
                return None
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(f"the log witness {where} is unreadable: {exc}") from exc
        if not isinstance(size, int) or size < 0 or len(root) != 32:
            raise ValueError(f"the log witness {where} holds no valid size and root")
        return cls(size, root)


class Witness(Protocol):
    def largest(self) -> Witnessed | None:
        """The largest tree recorded here. Raises ValueError, StorageUnavailableError."""

    def record(self, witnessed: Witnessed) -> None:
        """Durably record ``witnessed`` unless a larger tree is recorded already."""

    def describe(self) -> str: ...


class FileWitness:
    def __init__(self, path: Path, log: str) -> None:
        self.path = path
        self._log = log

    def describe(self) -> str:
        return str(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> Witnessed | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return Witnessed.from_json(data, self._log, str(self.path))

    def largest(self) -> Witnessed | None:
        return self._read()

    def record(self, witnessed: Witnessed) -> None:
        """Raises ServiceUnavailableError: the file cannot be written."""
        try:
            self._record(witnessed)
        except OSError as exc:
            raise ServiceUnavailableError(
                f"cannot write the log witness {self.path}: {exc.strerror or exc}; no "
                "checkpoint is signed until it can be. Make it writable, or point "
                "RELIQUARY_LOG_WITNESS_FILE at a writable place (keep the old file's content)"
            ) from exc

    def _record(self, witnessed: Witnessed) -> None:
        with self._locked():
            current = self._read()
            if current is not None and current.size >= witnessed.size:
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, witnessed.to_json(self._log))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)


class StoreWitness:
    """Witness objects in an S3 bucket: ``<prefix>_witness/<log id>/<size, 20 digits>``."""

    def __init__(self, store: S3BlobStore, log: str) -> None:
        self._store = store
        self._log = log
        self._prefix = f"_witness/{log}/"

    def describe(self) -> str:
        return f"s3://{self._store.bucket}/{self._store.key(self._prefix)}"

    def largest(self) -> Witnessed | None:
        names = self._store.list_records(self._prefix)
        if not names:
            return None
        data = self._store.get_record(names[-1])
        return Witnessed.from_json(data, self._log, f"s3://{self._store.bucket}/{names[-1]}")

    def record(self, witnessed: Witnessed) -> None:
        self._store.put_record(f"{self._prefix}{witnessed.size:020d}", witnessed.to_json(self._log))
        for stale in self._store.list_records(self._prefix)[:-KEEP_OBJECTS]:
            self._store.delete_record(stale)


class Witnesses:
    """Every witness of a deployment: the largest record wins; records go to all."""

    def __init__(self, witnesses: Sequence[Witness]) -> None:
        self._witnesses = tuple(witnesses)

    def describe(self) -> str:
        return " and ".join(w.describe() for w in self._witnesses)

    def largest(self) -> Witnessed | None:
        """Raises ValueError: two witnesses hold different roots for one size."""
        found = [w for w in (x.largest() for x in self._witnesses) if w is not None]
        sizes = {w.size: w for w in found}
        for w in found:
            if sizes[w.size].root != w.root:
                raise ValueError(
                    f"the log witnesses {self.describe()} hold two roots for size {w.size}: "
                    "this log was forked before"
                )
        return max(found, key=lambda w: w.size, default=None)

    def record(self, witnessed: Witnessed) -> None:
        for w in self._witnesses:
            w.record(witnessed)
