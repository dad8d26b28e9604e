"""Start-up checks that the paths a command will write to can be written.

A registry started on a read-only data directory used to fail deep inside SQLite
("unable to open database file") with a traceback. These checks run first and
raise one ``UnwritablePathError`` naming the path, why it cannot be written and
what to do, which the CLI prints as a single line.

Permission bits are not asked (``os.access`` answers yes to root even on an
immutable file or a read-only mount): each directory is probed by creating and
removing a file in it, and an existing file by opening it for writing, which
changes nothing. A missing directory is created, as the command would.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from registry.settings import Settings


class UnwritablePathError(RuntimeError):
    """A file or directory the command must write to cannot be written."""


def _reason(exc: OSError, subject: str, path: Path) -> str:
    if exc.errno == errno.EROFS:
        return f"{subject} is on a read-only filesystem"
    if exc.errno in (errno.EACCES, errno.EPERM):
        flag = " -d" if path.is_dir() else ""
        return (
            f"{subject} is read-only for uid {os.geteuid()} "
            f"(see `ls -l{flag} {path}`, and `lsattr{flag} {path}` for the immutable flag)"
        )
    return f"{subject}: {exc.strerror or exc}"


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_directory(path: Path, what: str, remedy: str) -> None:
    """Make sure ``path`` exists (creating it) and that files can be created in it.

    Raises:
        UnwritablePathError: it cannot be created, is not a directory, or is read-only.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UnwritablePathError(f"{what} {path} is not a directory. {remedy}") from None
    except OSError as exc:
        parent = _nearest_existing(path)
        raise UnwritablePathError(
            f"{what} {path} does not exist and cannot be created: "
            f"{_reason(exc, str(parent), parent)}. {remedy}"
        ) from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".reliquary-write-check-", dir=path)
    except OSError as exc:
        raise UnwritablePathError(
            f"{what} {path} is not writable: {_reason(exc, 'it', path)}. {remedy}"
        ) from exc
    os.close(fd)
    os.unlink(probe)


def check_file(path: Path, what: str, remedy: str) -> None:
    """Make sure ``path``, when it exists, can be opened for writing (nothing is written).

    Raises:
        UnwritablePathError: it exists and cannot be opened for writing.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnwritablePathError(
            f"{what} {path} is not writable: {_reason(exc, 'it', path)}. {remedy}"
        ) from exc
    os.close(fd)


def check_database(settings: Settings) -> None:
    """The embedded SQLite database: its file and its directory (WAL and journal files).

    Raises:
        UnwritablePathError: see ``check_directory`` and ``check_file``.
    """
    url = make_url(settings.database.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    database = Path(url.database).absolute()
    remedy = (
        "Make it writable by this user, or point RELIQUARY_DATA_DIR (--data-dir) "
        "or RELIQUARY_DATABASE_URL at a writable place"
    )
    check_directory(database.parent, "the database directory", remedy)
    check_file(database, "the database file", remedy)


def check_server_paths(settings: Settings) -> None:
    """Everything ``serve`` writes: the database, the blob directory, a new log key,
    the log witness.

    Raises:
        UnwritablePathError: see ``check_directory`` and ``check_file``.
    """
    check_database(settings)
    if settings.storage.backend == "filesystem":
        check_directory(
            settings.storage.root,
            "the blob directory",
            "Make it writable by this user, or point RELIQUARY_BLOB_DIR (--blob-dir) "
            "at a writable place",
        )
    if settings.embedded:  # creates its log key on first start
        check_log_key(settings)
    check_directory(
        settings.log.witness_file.parent,
        "the log witness's directory",
        "Make it writable by this user, or put the witness elsewhere "
        "(RELIQUARY_LOG_WITNESS_FILE); the log key itself may stay read-only",
    )
    check_file(
        settings.log.witness_file,
        "the log witness",
        "Make it writable by this user (it only ever grows: never delete it)",
    )


def check_log_key(settings: Settings) -> None:
    """The log key's directory, when the key does not exist yet and will be created there.

    Raises:
        UnwritablePathError: see ``check_directory``.
    """
    if not settings.log.key_file.exists():
        check_directory(
            settings.log.key_file.parent,
            "the log key's directory",
            "Make it writable by this user, or create the key elsewhere "
            "(--log-key-file, RELIQUARY_LOG_KEY_FILE)",
        )
