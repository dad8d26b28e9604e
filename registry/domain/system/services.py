"""Readiness: can we reach the database and write to the blob store?"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from registry.storage import BlobStore, StorageError


class HealthService:
    def __init__(self, reads: sessionmaker[Session], store: BlobStore) -> None:
        self._reads = reads
        self._store = store

    def check(self) -> dict[str, str]:
        """``{"database": "ok" | reason, "storage": "ok" | reason}``."""
        checks: dict[str, str] = {}
        try:
            with self._reads() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except SQLAlchemyError as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        try:
            self._store.check()
            checks["storage"] = "ok"
        except StorageError as exc:
            checks["storage"] = f"unavailable: {exc}"
        return checks
