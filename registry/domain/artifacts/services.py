"""Artifact service: push verified manifests, fetch exact bytes, list, resolve.

Invariants:
- A stored manifest is canonical, schema-valid, and every file it names is a
  published blob whose size and sha256 equal the manifest's claims.
- ``name@version`` binds one digest forever: the same digest again is a no-op,
  another digest is refused with both named.
- Manifest bytes are stored and served exactly as received; they are cached
  by digest since they never change.
- Every stored artifact has an ``artifact.pushed`` log entry, written in the
  same transaction, as is whatever the pusher's ``also`` writes (an OCI tag row):
  all of it commits, or none of it.
- A stored manifest's ``runtime.image`` names an image this registry holds (the
  injected ``ImageLookup``; images are never removed, so it stays held).
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cachetools import LRUCache
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from registry.core.digest import Digest
from registry.core.errors import InvalidManifestError
from registry.core.manifest import KINDS, ParsedManifest, parse_manifest
from registry.db.models import ArtifactRow
from registry.domain.artifacts.images import ImageLookup, NoImages
from registry.domain.artifacts.repositories import ArtifactRepository
from registry.domain.artifacts.schemas import Artifact, ArtifactPage, StoredManifest
from registry.domain.blobs.services import BlobService
from registry.domain.log.services import TransparencyLog
from registry.errors import (
    ArtifactNotFoundError,
    ImmutableVersionError,
    InvalidRequestError,
    ManifestFileMismatchError,
    MissingBlobsError,
    MissingReferenceError,
    MissingRuntimeImageError,
)

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class PushResult:
    artifact: Artifact
    created: bool


def _dto(row: ArtifactRow, labels: dict[str, str]) -> Artifact:
    return Artifact(
        digest=f"blake3:{row.digest}",
        sha256=f"sha256:{row.sha256}",
        name=row.name,
        version=row.version,
        kind=row.kind,
        size_bytes=row.size_bytes,
        created_at=row.created_at,
        labels=labels,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )


def _encode_cursor(row: ArtifactRow) -> str:
    text = f"{row.created_at.isoformat()}|{row.digest}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, digest = text.split("|")
        return datetime.fromisoformat(created).astimezone(UTC), Digest.blake3(digest).hex
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequestError(
            "cursor is not one this registry issued; pass next_cursor from the previous page"
        ) from None


class ArtifactService:
    def __init__(
        self,
        blobs: BlobService,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        log: TransparencyLog,
        images: ImageLookup | None = None,
    ) -> None:
        """``images``: which OCI images the registry holds (``runtime.image`` pins are
        checked against it); without one, every pin names a missing image."""
        self._blobs = blobs
        self.images: ImageLookup = images or NoImages()
        self._log = log
        self._push_hooks: list[Callable[[Session, ParsedManifest], None]] = []
        self._writes = writes
        self._reads = reads
        self._manifests: LRUCache[Digest, StoredManifest] = LRUCache(maxsize=20_000)
        self._lock = threading.Lock()

    def add_push_hook(self, hook: Callable[[Session, ParsedManifest], None]) -> None:
        """Run ``hook`` inside every new artifact's push transaction (jobs enqueue here)."""
        self._push_hooks.append(hook)

    def push(
        self,
        raw: bytes,
        token_id: str | None,
        also: Callable[[Session], None] | None = None,
        *,
        image: bool = False,
    ) -> PushResult:
        """Validate and store a manifest.

        ``also`` writes the caller's own rows in the new artifact's transaction, after its
        row and log entry, so they commit together or not at all (an error it raises
        rolls everything back and propagates). It runs only when the artifact is new: a
        push of bytes already stored (``created`` False) writes nothing, ``also`` included.

        An artifact of kind ``image`` is the layout of an image pushed under ``/v2``, and
        only the OCI context makes one (``image=True``, ``registry.domain.oci.images``):
        pushed any other way, it could take ``name@tag`` before the image's own tag push,
        or wrap bytes that are no image, so it is refused.

        Raises:
            InvalidJSONError, NonCanonicalJSONError, InvalidManifestError: bad bytes, or
                kind ``image`` without ``image``.
            ImmutableVersionError: name@version holds another digest.
            MissingReferenceError, MissingBlobsError, ManifestFileMismatchError.
            MissingRuntimeImageError: ``runtime.image`` pins an image not held here.
        """
        parsed = parse_manifest(raw)
        m = parsed.manifest
        if (m.kind == "image") != image:
            raise InvalidManifestError(
                [
                    "an artifact of kind image is made by pushing the image to /v2 "
                    f"(skopeo copy … docker://HOST/{m.name}:{m.version}), which also makes "
                    f"{m.name}@{m.version}; it cannot be pushed as a manifest"
                    if m.kind == "image"
                    else f"the OCI context pushes kind image only, not {m.kind}"
                ]
            )
        with self._reads() as session:
            existing = ArtifactRepository(session).by_name_version(m.name, m.version)
        if existing is not None:
            return self._same_or_conflict(existing, parsed)
        self._check_references(parsed)
        self._check_runtime_image(parsed)
        self._check_files(parsed)
        row = ArtifactRow(
            digest=parsed.digests.blake3.hex,
            sha256=parsed.digests.sha256.hex,
            name=m.name,
            version=m.version,
            kind=m.kind,
            manifest=raw,
            size_bytes=m.total_size_bytes,
            created_at=datetime.now(UTC),
            token_id=token_id,
        )
        try:
            with self._writes.begin() as session:
                ArtifactRepository(session).add(row, [f.blake3 for f in m.files], dict(m.labels))
                self._log.append(
                    session,
                    "artifact.pushed",
                    {
                        "digest": f"blake3:{row.digest}",
                        "sha256": f"sha256:{row.sha256}",
                        "name": m.name,
                        "version": m.version,
                        "artifact_kind": m.kind,
                    },
                )
                for hook in self._push_hooks:
                    hook(session, parsed)
                if also is not None:
                    also(session)
        except IntegrityError:  # a concurrent push of the same name@version won
            with self._reads() as session:
                existing = ArtifactRepository(session).by_name_version(m.name, m.version)
            if existing is None:
                raise
            return self._same_or_conflict(existing, parsed)
        self._remember(row)  # workers fetch what was just pushed
        return PushResult(_dto(row, dict(m.labels)), created=True)

    def _same_or_conflict(self, existing: ArtifactRow, parsed: ParsedManifest) -> PushResult:
        m = parsed.manifest
        if existing.digest == parsed.digests.blake3.hex:
            return PushResult(_dto(existing, dict(m.labels)), created=False)
        raise ImmutableVersionError(
            f"{m.name}@{m.version} is already bound to blake3:{existing.digest}; this manifest "
            f"is {parsed.digests.blake3}. Versions are immutable: push under a new version",
            existing_digest=f"blake3:{existing.digest}",
            pushed_digest=str(parsed.digests.blake3),
        )

    def _check_references(self, parsed: ParsedManifest) -> None:
        ref = parsed.manifest.reference
        if ref is None:
            return
        target = self.find_manifest(Digest.parse(ref.inputs))
        if target is None:
            raise MissingReferenceError(
                f"reference.inputs names {ref.inputs}, which this registry does not hold; "
                "push the reference-inputs artifact first",
                reference=ref.inputs,
            )

    def _check_runtime_image(self, parsed: ParsedManifest) -> None:
        pin = parsed.manifest.runtime_image
        if pin is None or self.images.holds_image(pin.name, pin.digest.hex):
            return
        raise MissingRuntimeImageError(
            f"runtime.image pins {pin}, which this registry does not hold (repository "
            f"{pin.name} has no manifest {pin.digest}); push the image first, keeping its "
            f"digest: skopeo copy --preserve-digests docker://SOURCE/{pin.name}@{pin.digest} "
            f"docker://HOST/{pin.name}:TAG, then push this manifest again",
            image=str(pin),
        )

    def _check_files(self, parsed: ParsedManifest) -> None:
        files = parsed.manifest.files
        present = self._blobs.present([f.blake3 for f in files])
        missing = [
            {"path": f.path, "blake3": f"blake3:{f.blake3}", "size_bytes": f.size}
            for f in files
            if f.blake3 not in present
        ]
        if missing:
            raise MissingBlobsError(
                f"{len(missing)} of {len(files)} files name blobs this registry does not hold; "
                "upload them (PUT /v1/blobs/{digest}) and push the manifest again",
                missing=missing,
            )
        wrong = []
        for f in files:
            stored = present[f.blake3].digests
            if stored.size_bytes != f.size or stored.sha256.hex != f.sha256:
                wrong.append(
                    {
                        "path": f.path,
                        "blake3": f"blake3:{f.blake3}",
                        "manifest_size_bytes": f.size,
                        "stored_size_bytes": stored.size_bytes,
                        "manifest_sha256": f"sha256:{f.sha256}",
                        "stored_sha256": str(stored.sha256),
                    }
                )
        if wrong:
            raise ManifestFileMismatchError(
                f"{len(wrong)} file entries disagree with the stored blob's size or sha256; "
                "rebuild the manifest from the files",
                mismatched=wrong,
            )

    def cached_manifest(self, digest: Digest) -> StoredManifest | None:
        """The manifest if this process has served it (no I/O: safe on the event loop)."""
        with self._lock:
            return self._manifests.get(digest)

    def find_manifest(self, digest: Digest) -> StoredManifest | None:
        cached = self.cached_manifest(digest)
        if cached is not None:
            return cached
        with self._reads() as session:
            row = ArtifactRepository(session).get(digest)
        return None if row is None else self._remember(row)

    def _remember(self, row: ArtifactRow) -> StoredManifest:
        """Cache a committed manifest (immutable, so never stale) under both digests."""
        stored = StoredManifest(
            Digest.blake3(row.digest),
            Digest.sha256(row.sha256),
            row.manifest,
            row.name,
            row.version,
        )
        with self._lock:
            self._manifests[stored.digest] = stored
            self._manifests[stored.sha256] = stored
        return stored

    def manifest(self, digest: Digest) -> StoredManifest:
        """Raises ArtifactNotFoundError."""
        stored = self.find_manifest(digest)
        if stored is None:
            raise ArtifactNotFoundError(
                f"no artifact {digest} in this registry", digest=str(digest)
            )
        return stored

    def revoke(self, digest: Digest, reason: str, token_id: str | None) -> Artifact:
        """Revoke an artifact for good (logged): it can never be promoted or rolled back to.

        Revoking twice keeps the first revocation. Raises ArtifactNotFoundError,
        InvalidRequestError (no reason).
        """
        if not reason.strip() or len(reason) > 1024:
            raise InvalidRequestError("a revocation needs a reason (1..1024 characters)")
        stored = self.manifest(digest)
        with self._writes.begin() as session:
            row = ArtifactRepository(session).get(stored.digest)
            assert row is not None  # artifacts are never deleted
            if row.revoked_at is None:
                self._log.append(
                    session,
                    "artifact.revoked",
                    {"digest": str(stored.digest), "reason": reason, "by": token_id},
                )
                row.revoked_at = datetime.now(UTC)
                row.revoked_reason = reason
            labels = ArtifactRepository(session).labels_of([row.digest])[row.digest]
            return _dto(row, labels)

    @staticmethod
    def revoked_reason(session: Session, digest: Digest) -> str | None:
        """Why ``digest`` was revoked, read in the caller's transaction; None if it was not."""
        row = ArtifactRepository(session).get(digest)
        return None if row is None else row.revoked_reason

    def describe(self, digest: Digest) -> Artifact:
        """Raises ArtifactNotFoundError."""
        stored = self.manifest(digest)
        return self.resolve(stored.name, stored.version)

    def find_version(
        self, name: str, version: str, session: Session | None = None
    ) -> Artifact | None:
        """``name@version`` if this registry holds it (read in ``session`` when given,
        e.g. a push transaction, else in a read of its own); None when it does not."""
        if session is None:
            with self._reads() as fresh:
                return self.find_version(name, version, fresh)
        repo = ArtifactRepository(session)
        row = repo.by_name_version(name, version)
        return None if row is None else _dto(row, repo.labels_of([row.digest])[row.digest])

    def resolve(self, name: str, version: str) -> Artifact:
        """Raises ArtifactNotFoundError."""
        with self._reads() as session:
            repo = ArtifactRepository(session)
            row = repo.by_name_version(name, version)
            if row is None:
                raise ArtifactNotFoundError(
                    f"no artifact {name}@{version}; list versions with GET /v1/artifacts?name={name}",
                    name=name,
                    version=version,
                )
            return _dto(row, repo.labels_of([row.digest])[row.digest])

    def list(
        self,
        *,
        name: str | None,
        kind: str | None,
        label: str | None,
        cursor: str | None,
        limit: int,
    ) -> ArtifactPage:
        if kind is not None and kind not in KINDS:
            raise InvalidRequestError(f"kind must be one of {', '.join(KINDS)}")
        label_pair = None
        if label is not None:
            key, sep, value = label.partition("=")
            if not sep or not key:
                raise InvalidRequestError("label filter must be key=value")
            label_pair = (key, value)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be 1..{MAX_PAGE}")
        after = None if cursor is None else _decode_cursor(cursor)
        with self._reads() as session:
            repo = ArtifactRepository(session)
            rows = repo.page(name=name, kind=kind, label=label_pair, after=after, limit=limit + 1)
            labels = repo.labels_of([r.digest for r in rows[:limit]])
        page = [_dto(r, labels[r.digest]) for r in rows[:limit]]
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return ArtifactPage(artifacts=page, next_cursor=next_cursor)
