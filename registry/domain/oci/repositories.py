"""OCI rows: which repository holds which blob and manifest, manifests, tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, select, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import QueryableAttribute, Session

from registry.db.models import (
    OciManifestRow,
    OciRepositoryBlobRow,
    OciRepositoryManifestRow,
    OciTagRow,
)


class OciRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _insert_ignore(self, model: Any, values: dict[str, Any], keys: list[str]) -> bool:
        """Insert unless a row with these keys exists; True when this call inserted it (on
        PostgreSQL a concurrent insert of the same keys is waited for, then seen)."""
        dialect = self.session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(model).values(values)
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        inserted = self.session.execute(stmt.returning(getattr(model, keys[0])))
        return inserted.scalar_one_or_none() is not None

    def _byte_order(
        self, column: ColumnElement[str] | QueryableAttribute[str]
    ) -> ColumnElement[str] | QueryableAttribute[str]:
        if self.session.get_bind().dialect.name == "postgresql":
            return column.collate("C")  # byte order, as the spec's "lexical" means
        return column  # SQLite compares text with memcmp already

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
        column = self._byte_order(names.c.name)
        return list(
            self.session.scalars(
                select(names.c.name).where(column > after).order_by(column).limit(limit)
            )
        )

    # -- manifests ------------------------------------------------------------------------
    def add_manifest(self, row: OciManifestRow) -> str:
        """Record a manifest (idempotent: its sha256 names the same bytes forever); the
        media type it is recorded under (an earlier push's, when it was there)."""
        values = {c.name: getattr(row, c.key) for c in OciManifestRow.__table__.columns}
        if self._insert_ignore(OciManifestRow, values, ["sha256"]):
            return row.media_type
        recorded = self.session.get(OciManifestRow, row.sha256)
        assert recorded is not None  # manifests are never removed
        return recorded.media_type

    def hold_manifest(self, name: str, sha256_hex: str, now: datetime) -> bool:
        """Record that ``name`` holds the manifest (idempotent); True when it is new."""
        return self._insert_ignore(
            OciRepositoryManifestRow,
            {"name": name, "sha256": sha256_hex, "created_at": now},
            ["name", "sha256"],
        )

    def held_manifest(self, name: str, sha256_hex: str) -> OciManifestRow | None:
        """The manifest if repository ``name`` holds it."""
        return self.session.scalar(
            select(OciManifestRow)
            .join(
                OciRepositoryManifestRow, OciRepositoryManifestRow.sha256 == OciManifestRow.sha256
            )
            .where(OciRepositoryManifestRow.name == name, OciManifestRow.sha256 == sha256_hex)
        )

    def held_manifests(self, name: str, sha256_hexes: list[str]) -> dict[str, OciManifestRow]:
        """Which of ``sha256_hexes`` the repository holds, by sha256."""
        if not sha256_hexes:
            return {}
        rows = self.session.scalars(
            select(OciManifestRow)
            .join(
                OciRepositoryManifestRow, OciRepositoryManifestRow.sha256 == OciManifestRow.sha256
            )
            .where(
                OciRepositoryManifestRow.name == name,
                OciManifestRow.sha256.in_(sorted(set(sha256_hexes))),
            )
        )
        return {row.sha256: row for row in rows}

    def referrers(
        self, name: str, subject_hex: str, artifact_type: str | None
    ) -> list[OciManifestRow]:
        """The manifests ``name`` holds whose subject is ``subject_hex``, by sha256."""
        query = (
            select(OciManifestRow)
            .join(
                OciRepositoryManifestRow, OciRepositoryManifestRow.sha256 == OciManifestRow.sha256
            )
            .where(
                OciRepositoryManifestRow.name == name,
                OciManifestRow.subject_sha256 == subject_hex,
            )
        )
        if artifact_type is not None:
            query = query.where(OciManifestRow.artifact_type == artifact_type)
        return list(self.session.scalars(query.order_by(OciManifestRow.sha256)))

    # -- tags -----------------------------------------------------------------------------
    def tag(self, name: str, tag: str) -> OciTagRow | None:
        return self.session.get(OciTagRow, {"name": name, "tag": tag})

    def add_tag(self, name: str, tag: str, sha256_hex: str, now: datetime) -> bool:
        """Bind ``tag`` to the manifest unless the tag is bound already: True when this
        call bound it, False when it was bound before (``tag`` reads to what)."""
        values = {"name": name, "tag": tag, "sha256": sha256_hex, "created_at": now}
        return self._insert_ignore(OciTagRow, values, ["name", "tag"])

    def tags(self, name: str, after: str, limit: int) -> list[str]:
        """Tags of ``name`` after ``after`` in byte order, at most ``limit``."""
        column = self._byte_order(OciTagRow.tag)
        return list(
            self.session.scalars(
                select(OciTagRow.tag)
                .where(OciTagRow.name == name, column > after)
                .order_by(column)
                .limit(limit)
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
