"""Artifact rows: manifests, their blob references and labels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from registry.core.digest import Algorithm, Digest
from registry.db.models import ArtifactBlobRow, ArtifactLabelRow, ArtifactRow


class ArtifactRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, digest: Digest) -> ArtifactRow | None:
        if digest.algorithm is Algorithm.BLAKE3:
            return self.session.get(ArtifactRow, digest.hex)
        return self.session.scalar(select(ArtifactRow).where(ArtifactRow.sha256 == digest.hex))

    def by_name_version(self, name: str, version: str) -> ArtifactRow | None:
        return self.session.scalar(
            select(ArtifactRow).where(ArtifactRow.name == name, ArtifactRow.version == version)
        )

    def add(self, row: ArtifactRow, blob_hexes: Sequence[str], labels: dict[str, str]) -> None:
        self.session.add(row)
        self.session.flush()
        self.session.add_all(
            ArtifactBlobRow(artifact_digest=row.digest, blob_blake3=h)
            for h in dict.fromkeys(blob_hexes)
        )
        self.session.add_all(
            ArtifactLabelRow(artifact_digest=row.digest, key=k, value=v) for k, v in labels.items()
        )
        self.session.flush()

    def page(
        self,
        *,
        name: str | None,
        kind: str | None,
        label: tuple[str, str] | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ArtifactRow]:
        """Newest first; ``after`` is the (created_at, digest) of the previous page's last row."""
        query: Select[tuple[ArtifactRow]] = select(ArtifactRow)
        if name is not None:
            query = query.where(ArtifactRow.name == name)
        if kind is not None:
            query = query.where(ArtifactRow.kind == kind)
        if label is not None:
            query = query.where(
                ArtifactRow.digest.in_(
                    select(ArtifactLabelRow.artifact_digest).where(
                        ArtifactLabelRow.key == label[0], ArtifactLabelRow.value == label[1]
                    )
                )
            )
        if after is not None:
            created, digest = after
            query = query.where(
                or_(
                    ArtifactRow.created_at < created,
                    and_(ArtifactRow.created_at == created, ArtifactRow.digest < digest),
                )
            )
        query = query.order_by(ArtifactRow.created_at.desc(), ArtifactRow.digest.desc())
        return list(self.session.scalars(query.limit(limit)))

    def labels_of(self, digests: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {d: {} for d in digests}
        if digests:
            rows = self.session.scalars(
                select(ArtifactLabelRow).where(ArtifactLabelRow.artifact_digest.in_(digests))
            )
            for row in rows:
                out[row.artifact_digest][row.key] = row.value
        return out
