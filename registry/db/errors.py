"""Errors the database layer raises instead of driver exceptions it can name.

A driver error that means "the database cannot grow" (SQLite ``SQLITE_FULL``,
"database or disk is full"; PostgreSQL SQLSTATE 53100 ``disk_full``, "could not
extend file") is raised as ``DatabaseFullError`` by the engine itself (see
``registry.db.engine``), so every write path answers it the same way: the
transaction is rolled back and nothing it wrote is kept.
"""

from __future__ import annotations

import sqlite3

DISK_FULL_SQLSTATE = "53100"  # PostgreSQL's disk_full (psycopg.errors.DiskFull)


class DatabaseFullError(Exception):
    """The database has no room for a write (its disk, quota or size limit is full);
    the transaction was rolled back."""


def is_database_full(exc: BaseException) -> bool:
    """Whether a driver exception says the database (or the disk under it) is full."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return getattr(exc, "sqlstate", None) == DISK_FULL_SQLSTATE
