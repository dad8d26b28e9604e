"""OCI repositories: what each holds, manifests, tags and referrers.

Invariants:
- A repository holds a blob once it was uploaded or mounted into it, or named by a
  manifest pushed there; it holds a manifest once pushed there. Nothing is ever
  removed, so what this process has seen held stays held (a positive cache).
- Blobs are the registry's one blob store (``BlobService``): an OCI blob is the same
  content-addressed blob as a ``/v1`` file, named by its sha256. A manifest's exact
  bytes are a blob too (an image layout names them ``blobs/sha256/<hex>``), held by
  the repositories it was pushed to.
- A manifest is recorded only once it parsed (``registry.core.oci``), its digest
  matched the one in the URL, and the repository held every blob it references and,
  for an index, every child manifest; its ``subject`` need not exist (distribution-spec
  v1.1: referrers may be pushed before what they refer to).
- A tag names one manifest forever: the same manifest again is a no-op, another one
  is refused naming both digests. A tag is also the image artifact ``name@tag``
  (``registry.domain.oci.images``): the tag row, the manifest's rows, the artifact and
  its ``artifact.pushed`` log entry commit in one transaction, or none of them.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from cachetools import LRUCache
from sqlalchemy.orm import Session, sessionmaker

from registry.core.digest import Digest
from registry.core.errors import InvalidOciManifestError
from registry.core.oci import Descriptor, OciManifest, parse_oci_manifest, parse_sha256
from registry.core.oci_layout import ImageDescriptor, tag_problem
from registry.db.models import OciManifestRow
from registry.domain.blobs.schemas import BlobInfo
from registry.domain.blobs.services import BlobService
from registry.domain.oci.images import ImagePublisher
from registry.domain.oci.repositories import OciRepository
from registry.domain.oci.routes import TAG_PATTERN
from registry.domain.oci.schemas import (
    Page,
    PushedManifest,
    ReferrerDescriptor,
    ReferrersIndex,
    StoredOciManifest,
)
from registry.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    ImmutableVersionError,
    InvalidTagError,
    OciManifestBlobsMissingError,
    OciManifestNotFoundError,
    RepositoryNotFoundError,
    TagTakenError,
)

MAX_PAGE = 1000  # tags and repositories per page
MANIFEST_CACHE_BYTES = 64 * 2**20


def parse_reference(reference: str) -> tuple[str | None, Digest | None]:
    """A manifest reference: ``(tag, None)`` or ``(None, sha256 digest)``.

    Raises:
        InvalidDigestError: it has a ``:`` but is no sha256 digest.
        InvalidTagError: neither a digest nor a tag of the OCI grammar.
    """
    if ":" in reference:
        return None, parse_sha256(reference)
    if TAG_PATTERN.fullmatch(reference) is None:
        shown = reference if len(reference) <= 140 else reference[:140] + "..."
        raise InvalidTagError(
            f"{shown!r} is neither a tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}) nor a "
            "digest (sha256:<64 hex>)",
            reference=shown,
        )
    return reference, None


def _stored(row: OciManifestRow) -> StoredOciManifest:
    return StoredOciManifest(
        digest=Digest.sha256(row.sha256),
        blake3=Digest.blake3(row.blake3),
        media_type=row.media_type,
        size_bytes=row.size_bytes,
        raw=row.raw,
        artifact_type=row.artifact_type,
        subject=None if row.subject_sha256 is None else Digest.sha256(row.subject_sha256),
    )


def _described(where: str, d: Descriptor) -> dict[str, Any]:
    return {
        "field": where,
        "mediaType": d.media_type,
        "digest": str(d.digest),
        "size": d.size_bytes,
    }


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _page_size(n: int | None) -> int:
    return MAX_PAGE if n is None else min(n, MAX_PAGE)


class OciService:
    def __init__(
        self,
        blobs: BlobService,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        images: ImagePublisher,
    ) -> None:
        """``images`` pushes a tagged manifest as the image artifact ``name@tag``."""
        self.blobs = blobs
        self._images = images
        self._writes = writes
        self._reads = reads
        self._held: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=200_000)
        # (name, reference) -> manifest: immutable tags and contents, never-removed rows
        self._manifests: LRUCache[tuple[str, str], StoredOciManifest] = LRUCache(
            maxsize=MANIFEST_CACHE_BYTES, getsizeof=lambda m: m.size_bytes + 512
        )
        self._lock = threading.Lock()

    # -- blobs held by a repository -----------------------------------------------------
    def cached_blob(self, name: str, digest: Digest) -> BlobInfo | None:
        """The blob if this process has seen ``name`` hold it (no I/O: event-loop safe)."""
        info = self.blobs.cached(digest)
        if info is None:
            return None
        with self._lock:
            held = self._held.get((name, info.digests.blake3.hex))
        return info if held else None

    def find_blob(self, name: str, digest: Digest) -> BlobInfo | None:
        """The blob named by ``digest`` if repository ``name`` holds it, else None."""
        info = self.cached_blob(name, digest)
        if info is not None:
            return info
        info = self.blobs.find(digest)
        if info is None:
            return None
        blake3_hex = info.digests.blake3.hex
        with self._reads() as session:
            held = OciRepository(session).holds_blob(name, blake3_hex)
        if held:
            self.remember_held(name, [blake3_hex])
        return info if held else None

    def blob(self, name: str, digest: Digest) -> BlobInfo:
        """Raises BlobNotFoundError: no such blob, or not in this repository."""
        info = self.find_blob(name, digest)
        if info is None:
            raise BlobNotFoundError(
                f"repository {name} holds no blob {digest}; push it there, or mount it "
                f"with POST /v2/{name}/blobs/uploads/?mount={digest}&from=<repository>",
                digest=str(digest),
            )
        return info

    def hold_blobs(self, session: Session, name: str, infos: list[BlobInfo]) -> None:
        """Record, in the caller's transaction, that ``name`` holds ``infos``; call
        ``remember_held`` once it committed."""
        OciRepository(session).add_blobs(name, [i.digests.blake3.hex for i in infos])

    def add_blob(self, name: str, info: BlobInfo) -> None:
        """Record that ``name`` holds ``info`` (its own transaction)."""
        with self._writes.begin() as session:
            self.hold_blobs(session, name, [info])
        self.remember_held(name, [info.digests.blake3.hex])

    def remember_held(self, name: str, blake3_hexes: list[str]) -> None:
        with self._lock:
            for blake3_hex in blake3_hexes:
                self._held[(name, blake3_hex)] = True

    # -- repositories --------------------------------------------------------------------
    def catalog(self, n: int | None, last: str) -> Page:
        """Repository names after ``last`` in byte order: at most ``n`` (``MAX_PAGE``
        when None or larger)."""
        size = _page_size(n)
        if size == 0:
            return Page([], more=False)
        with self._reads() as session:
            names = OciRepository(session).names(last, size + 1)
        return Page(names[:size], more=len(names) > size)

    def list_tags(self, name: str, n: int | None, last: str) -> Page:
        """Tags of ``name`` after ``last`` in byte order: at most ``n`` (``MAX_PAGE``
        when None or larger).

        Raises:
            RepositoryNotFoundError: nothing was ever pushed under ``name``.
        """
        size = _page_size(n)
        with self._reads() as session:
            repo = OciRepository(session)
            if not repo.exists(name):
                raise RepositoryNotFoundError(
                    f"no repository {name} in this registry; push a blob or manifest there "
                    "first, or list the repositories: GET /v2/_catalog",
                    name=name,
                )
            tags = repo.tags(name, last, size + 1) if size else []
        return Page(tags[:size], more=len(tags) > size)

    # -- manifests -----------------------------------------------------------------------
    async def put_manifest(
        self,
        name: str,
        reference: str,
        content_type: str | None,
        raw: bytes,
        token_id: str | None,
    ) -> PushedManifest:
        """Validate and store manifest bytes pushed to ``name`` by tag or by digest;
        ``content_type`` is the request's ``Content-Type``. Nothing is recorded unless
        every check passed (the bytes may be left in the blob store, as any blob).

        Raises:
            InvalidTagError, InvalidDigestError: ``reference`` is neither.
            InvalidJSONError, InvalidOciManifestError: the bytes are not a manifest this
                registry accepts, or a descriptor's size disagrees with what it names.
            DigestMismatchError: pushed by a digest the bytes do not have.
            TagTakenError: the tag names another manifest already.
            ImmutableVersionError: artifact ``name@tag`` exists and is not this image
                (pushed through ``/v1``, or a concurrent push of another manifest won).
            OciManifestBlobsMissingError: ``name`` lacks referenced blobs or children.
            StorageError: the blob store failed; nothing recorded.
        """
        tag, claimed = parse_reference(reference)
        parsed = parse_oci_manifest(raw, content_type)
        if claimed is not None and claimed != parsed.digest:
            raise DigestMismatchError(
                f"the manifest's {len(raw)} bytes hash to {parsed.digest}, not to {claimed} "
                "named in the URL; nothing was stored. Push it by its own digest or a tag",
                claimed=str(claimed),
                received_sha256=str(parsed.digest),
            )
        if tag is not None and (problem := tag_problem(tag)) is not None:
            raise InvalidTagError(problem, tag=tag)  # the tag cannot be an artifact version
        if tag is not None:  # an idempotent re-push, or a refusal, costs one read
            bound = await anyio.to_thread.run_sync(self._bound, name, tag)
            if bound is not None:
                return self._same_or_taken(name, tag, bound, parsed)
        held = await anyio.to_thread.run_sync(self._check_references, name, parsed)
        info, _ = await self.blobs.ingest(parsed.digest, _once(raw))
        stored = StoredOciManifest(
            digest=parsed.digest,
            blake3=info.digests.blake3,
            media_type=parsed.media_type,
            size_bytes=len(raw),
            raw=raw,
            artifact_type=parsed.artifact_type,
            subject=None if parsed.subject is None else parsed.subject.digest,
        )
        blobs = [info, *held]
        if tag is None:
            return await anyio.to_thread.run_sync(self._record, name, None, stored, parsed, blobs)
        layout = await anyio.to_thread.run_sync(self._layout_blobs, name, parsed, blobs)
        now = datetime.now(UTC)

        def bind(session: Session) -> None:  # in the image artifact's transaction
            self._write(session, name, tag, stored, parsed, blobs, now)

        top = ImageDescriptor(parsed.media_type, parsed.digest, len(raw))
        try:
            pushed = await self._images.publish(
                name, tag, top, [b.digests for b in layout], token_id, also=bind
            )
        except ImmutableVersionError:  # a concurrent push of another manifest won the tag?
            bound = await anyio.to_thread.run_sync(self._bound, name, tag)
            if bound is None:
                raise  # name@tag is an artifact that is no image of this tag
            return self._same_or_taken(name, tag, bound, parsed)
        if not pushed.created:  # name@tag was there with these very bytes: bind or refuse
            return await anyio.to_thread.run_sync(self._record, name, tag, stored, parsed, blobs)
        self.remember_held(name, [b.digests.blake3.hex for b in blobs])
        return PushedManifest(stored.digest, stored.subject, created=True)

    def _bound(self, name: str, tag: str) -> str | None:
        with self._reads() as session:
            row = OciRepository(session).tag(name, tag)
        return None if row is None else row.sha256

    def _same_or_taken(
        self, name: str, tag: str, bound_hex: str, parsed: OciManifest
    ) -> PushedManifest:
        """Raises TagTakenError unless ``tag`` is bound to this very manifest."""
        if bound_hex != parsed.digest.hex:
            raise TagTakenError(
                f"tag {name}:{tag} already names sha256:{bound_hex}; this manifest is "
                f"{parsed.digest}. Tags are immutable versions: push it under a new tag, "
                "or by its digest",
                tag=tag,
                existing_digest=f"sha256:{bound_hex}",
                pushed_digest=str(parsed.digest),
            )
        subject = None if parsed.subject is None else parsed.subject.digest
        return PushedManifest(parsed.digest, subject, created=False)

    def _check_references(self, name: str, parsed: OciManifest) -> list[BlobInfo]:
        """The blobs ``parsed`` references (config, layers), each held by ``name``.

        Raises:
            OciManifestBlobsMissingError: blobs or child manifests ``name`` lacks (all
                listed in ``missing``).
            InvalidOciManifestError: a descriptor's size is not its content's.
        """
        missing: list[dict[str, Any]] = []
        wrong: list[str] = []
        held: list[BlobInfo] = []
        wheres = (["config"] if parsed.config is not None else []) + [
            f"layers[{i}]" for i in range(len(parsed.layers))
        ]
        for where, d in zip(wheres, parsed.blobs, strict=True):
            info = self.find_blob(name, d.digest)
            if info is None:
                missing.append(_described(where, d))
            elif info.digests.size_bytes != d.size_bytes:
                wrong.append(
                    f"{where} says {d.size_bytes} bytes, {d.digest} has {info.digests.size_bytes}"
                )
            else:
                held.append(info)
        if parsed.manifests:
            with self._reads() as session:
                rows = OciRepository(session).held_manifests(
                    name, [d.digest.hex for d in parsed.manifests]
                )
            for i, d in enumerate(parsed.manifests):
                row = rows.get(d.digest.hex)
                if row is None:
                    missing.append(_described(f"manifests[{i}]", d))
                elif row.size_bytes != d.size_bytes:
                    wrong.append(
                        f"manifests[{i}] says {d.size_bytes} bytes, {d.digest} has {row.size_bytes}"
                    )
        if missing:
            listed = ", ".join(f"{m['field']} {m['digest']}" for m in missing[:5])
            raise OciManifestBlobsMissingError(
                f"repository {name} holds no {listed}"
                + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else "")
                + f"; push the blobs there first (POST /v2/{name}/blobs/uploads/, or mount "
                "them with ?mount=<digest>&from=<repository>) and each child manifest, then "
                "this manifest again",
                missing=missing,
            )
        if wrong:
            raise InvalidOciManifestError(
                "descriptor sizes disagree with the content they name: " + "; ".join(wrong[:5])
            )
        return held

    def _record(
        self,
        name: str,
        tag: str | None,
        stored: StoredOciManifest,
        parsed: OciManifest,
        blobs: list[BlobInfo],
    ) -> PushedManifest:
        """``_write`` in a transaction of its own. Raises TagTakenError."""
        with self._writes.begin() as session:
            created = self._write(session, name, tag, stored, parsed, blobs, datetime.now(UTC))
        self.remember_held(name, [b.digests.blake3.hex for b in blobs])
        return PushedManifest(stored.digest, stored.subject, created)

    def _write(
        self,
        session: Session,
        name: str,
        tag: str | None,
        stored: StoredOciManifest,
        parsed: OciManifest,
        blobs: list[BlobInfo],
        now: datetime,
    ) -> bool:
        """Write, in ``session``'s transaction, the manifest's row, that ``name`` holds it
        and ``blobs`` and, with a tag, the tag: True when something was new (the tag, or
        for a push by digest the repository's hold on the manifest).

        Raises:
            TagTakenError: the tag names another manifest (a concurrent push bound it);
                the transaction must roll back.
            InvalidOciManifestError: the bytes are recorded under another media type.
        """
        repo = OciRepository(session)
        recorded = repo.add_manifest(
            OciManifestRow(
                sha256=stored.digest.hex,
                blake3=stored.blake3.hex,
                media_type=stored.media_type,
                size_bytes=stored.size_bytes,
                artifact_type=stored.artifact_type,
                subject_sha256=None if stored.subject is None else stored.subject.hex,
                raw=stored.raw,
                created_at=now,
            )
        )
        if recorded != stored.media_type:  # bytes without a mediaType of their own
            raise InvalidOciManifestError(
                f"{stored.digest} is recorded as {recorded}, pushed so before; push these "
                f"bytes with Content-Type: {recorded}, so every repository serves them alike"
            )
        created = repo.hold_manifest(name, stored.digest.hex, now)
        repo.add_blobs(name, [b.digests.blake3.hex for b in blobs])
        if tag is None:
            return created
        if repo.add_tag(name, tag, stored.digest.hex, now):
            return True
        bound = repo.tag(name, tag)
        assert bound is not None  # tags are never removed
        self._same_or_taken(name, tag, bound.sha256, parsed)
        return False

    def _layout_blobs(
        self, name: str, parsed: OciManifest, blobs: list[BlobInfo]
    ) -> tuple[BlobInfo, ...]:
        """Every blob an image layout of ``parsed`` holds (the image artifact's ``blobs/sha256/<hex>`` files);
        ``blobs``: the manifest's own blob, then those it references."""
        found = {i.digests.sha256.hex: i for i in blobs}
        pending = list(parsed.manifests)
        with self._reads() as session:
            repo = OciRepository(session)
            while pending:
                child = pending.pop()
                if child.digest.hex in found:
                    continue
                row = repo.held_manifest(name, child.digest.hex)
                assert row is not None  # checked held; nothing is ever removed
                found[row.sha256] = self.blobs.get(Digest.blake3(row.blake3))
                inner = parse_oci_manifest(row.raw, row.media_type)  # valid when pushed
                for d in inner.blobs:
                    if d.digest.hex not in found:
                        found[d.digest.hex] = self.blobs.get(d.digest)
                pending.extend(inner.manifests)
        return tuple(found[k] for k in sorted(found))

    def cached_manifest(self, name: str, reference: str) -> StoredOciManifest | None:
        """The manifest if this process has served it for ``name`` and ``reference``
        (no I/O: event-loop safe)."""
        with self._lock:
            return self._manifests.get((name, reference))

    def get_manifest(self, name: str, reference: str) -> StoredOciManifest:
        """The manifest ``name`` holds under a tag or digest.

        Raises:
            InvalidTagError, InvalidDigestError: ``reference`` is neither.
            OciManifestNotFoundError: ``name`` holds no such manifest.
        """
        cached = self.cached_manifest(name, reference)
        if cached is not None:
            return cached
        tag, digest = parse_reference(reference)
        with self._reads() as session:
            repo = OciRepository(session)
            if tag is not None:
                bound = repo.tag(name, tag)
                row = None if bound is None else repo.held_manifest(name, bound.sha256)
            else:
                assert digest is not None
                row = repo.held_manifest(name, digest.hex)
        if row is None:
            raise OciManifestNotFoundError(
                f"repository {name} has no manifest {reference}; list its tags with "
                f"GET /v2/{name}/tags/list",
                name=name,
                reference=reference,
            )
        stored = _stored(row)
        if stored.size_bytes <= MANIFEST_CACHE_BYTES // 16:  # a larger one is read each time
            with self._lock:
                self._manifests[(name, reference)] = stored
        return stored

    def referrers(self, name: str, digest: Digest, artifact_type: str | None) -> ReferrersIndex:
        """The manifests ``name`` holds whose ``subject`` is ``digest`` (only those of
        ``artifact_type`` when given), as an image index; empty when there are none."""
        with self._reads() as session:
            rows = OciRepository(session).referrers(name, digest.hex, artifact_type)
        manifests = []
        for row in rows:
            annotations = parse_oci_manifest(row.raw, row.media_type).annotations
            manifests.append(
                ReferrerDescriptor(
                    media_type=row.media_type,
                    digest=f"sha256:{row.sha256}",
                    size=row.size_bytes,
                    artifact_type=row.artifact_type,
                    annotations=dict(annotations) or None,
                )
            )
        return ReferrersIndex(manifests=manifests)
