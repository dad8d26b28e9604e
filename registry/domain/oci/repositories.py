"""OCI rows: which repository holds which blob and manifest, manifests, tags."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, select, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.db.models import OciRepositoryBlobRow, OciRepositoryManifestRow, OciTagRow


class OciRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _insert_ignore(self, model: Any, values: dict[str, Any], keys: list[str]) -> None:
        dialect = self.session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(model).values(values)
        self.session.execute(stmt.on_conflict_do_nothing(index_elements=keys))

    # -- blobs ----------------------------------------------------------------------------
    def add_blobs(self, name: str, blake3_hexes: list[str]) -> None:
        """Record that ``name`` holds these blobs (idempotent)."""
        for blake3_hex in sorted(set(blake3_hexes)):  # one lock order across writers
            self._insert_ignore(
                OciRepositoryBlobRow, {"name": name, "blake3": blake3_hex}, ["name", "blake3"]
            )

    def holds_blob(self, name: str, blake3_hex: str) -> bool:
        return (
            self.session.get(OciRepositoryBlobRow, {"name": name, "blake3": blake3_hex}) is not None
        )

    def blobs_held(self, name: str, blake3_hexes: list[str]) -> set[str]:
        """Which of ``blake3_hexes`` the repository holds."""
        if not blake3_hexes:
            return set()
        rows = self.session.scalars(
            select(OciRepositoryBlobRow.blake3).where(
                OciRepositoryBlobRow.name == name,
                OciRepositoryBlobRow.blake3.in_(blake3_hexes),
            )
        )
        return set(rows)

    # -- repositories ---------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        """Whether anything (a blob or a manifest) was ever pushed under ``name``."""
        blob = exists().where(OciRepositoryBlobRow.name == name)
        manifest = exists().where(OciRepositoryManifestRow.name == name)
        return bool(self.session.scalar(select(blob | manifest)))

    def names(self, after: str, limit: int) -> list[str]:
        """Repository names after ``after`` in byte order, at most ``limit``."""
        names = union(
            select(OciRepositoryBlobRow.name.label("name")),
            select(OciRepositoryManifestRow.name.label("name")),
        ).subquery()
        column: ColumnElement[str] = names.c.name
        if self.session.get_bind().dialect.name == "postgresql":
            column = column.collate("C")  # byte order, as the spec's "lexical" means
        return list(
            self.session.scalars(
                select(names.c.name).where(column > after).order_by(column).limit(limit)
            )
        )

    # -- runtime pins (``registry.domain.oci.pins``) --------------------------------------
    def holds_manifest(self, name: str, sha256_hex: str) -> bool:
        """Whether repository ``name`` holds the manifest whose sha256 is ``sha256_hex``."""
        key = {"name": name, "sha256": sha256_hex}
        return self.session.get(OciRepositoryManifestRow, key) is not None

    def tags_of(self, name: str, sha256_hex: str) -> list[str]:
        """The tags of repository ``name`` that name manifest ``sha256_hex``, sorted."""
        return sorted(
            self.session.scalars(
                select(OciTagRow.tag).where(OciTagRow.name == name, OciTagRow.sha256 == sha256_hex)
            )
        )
