"""Publishing a tagged image as the artifact ``NAME@TAG`` of kind ``image``.

Its files are the image's OCI image layout (``registry.core.oci_layout``): the two
files only the layout has are stored as blobs here; every other file is a blob the
tag push already holds (manifests, configs, layers).

Invariants:
- The artifact, its ``artifact.pushed`` log entry and whatever the caller's ``also``
  writes (the tag row) commit in one transaction, or none of them does.
- Publishing the same tag of the same manifest again builds byte-identical manifest
  bytes: the push is idempotent (``created`` False) and writes nothing, ``also``
  included.
- A tag that cannot be an artifact version is refused before anything is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial

import anyio.to_thread
from sqlalchemy.orm import Session

from registry.core.digest import BlobDigests, digest_bytes
from registry.core.errors import InvalidManifestError
from registry.core.oci_layout import ImageDescriptor, ImageLayout, build_image_layout
from registry.domain.artifacts.services import ArtifactService, PushResult
from registry.domain.blobs.services import BlobService
from registry.errors import InvalidTagError


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class ImagePublisher:
    def __init__(self, blobs: BlobService, artifacts: ArtifactService) -> None:
        self._blobs = blobs
        self._artifacts = artifacts

    @staticmethod
    def layout(
        name: str, tag: str, top: ImageDescriptor, blobs: Iterable[BlobDigests]
    ) -> ImageLayout:
        """The layout ``publish`` pushes for these inputs (pure: no I/O).

        Raises InvalidTagError: the tag cannot be a version (a leading ``_``): 400 TAG_INVALID.
        """
        try:
            return build_image_layout(name, tag, top, blobs)
        except InvalidManifestError as exc:
            raise InvalidTagError(str(exc), name=name, tag=tag) from None

    async def publish(
        self,
        name: str,
        tag: str,
        top: ImageDescriptor,
        blobs: Iterable[BlobDigests],
        token_id: str | None,
        also: Callable[[Session], None] | None = None,
    ) -> PushResult:
        """Push ``name:tag`` (the manifest ``top``) as the image artifact ``name@tag``.

        ``blobs``: every blob of the image, all already stored: ``top``'s own bytes, its
        config and layers and, for an index, every child manifest with its config and
        layers (``build_image_layout``). ``also`` runs in the artifact's transaction
        (``ArtifactService.push``), only when the artifact is new.

        Raises:
            InvalidTagError: the tag cannot be an artifact version; nothing stored.
            ImmutableVersionError: ``name@tag`` is another artifact (one pushed through
                ``/v1``, or another manifest under this tag).
            MissingBlobsError: a blob of ``blobs`` is not stored.
            StorageError: the store failed; the artifact was not pushed.
        """
        layout = self.layout(name, tag, top, blobs)
        for data in layout.files.values():
            await self._blobs.ingest(digest_bytes(data).blake3, _one_chunk(data))
        push = partial(self._artifacts.push, layout.manifest_bytes, token_id, also=also, image=True)
        return await anyio.to_thread.run_sync(push)
