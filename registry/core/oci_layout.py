"""An image as an artifact: the OCI image layout of one tagged manifest.

A tag push of an OCI (or Docker schema 2) manifest is also the artifact
``NAME@TAG`` of kind ``image``, whose files are the image's OCI image layout
(image-spec v1.1 ``image-layout.md``)::

    oci-layout            {"imageLayoutVersion":"1.0.0"}
    index.json            one descriptor: the tagged manifest, ref.name = TAG
    blobs/sha256/<hex>    the manifest's own bytes, its config and layers, and for an
                          index every child manifest with its config and layers

so that ``reliquary pull NAME@TAG -o DIR`` yields a directory ``skopeo copy oci:DIR``
reads. Pure: the caller walks the manifests and names every blob the layout holds.

Invariants:
- ``build_image_layout`` is a function of its inputs alone: the same repository, tag,
  descriptor and blob set give byte-identical ``oci-layout``, ``index.json`` and
  Reliquary manifest bytes (``index.json`` is RFC 8785 canonical JSON), so a tag
  pushed again with the same manifest is the same artifact, an idempotent push.
- The Reliquary manifest lists each blob once (by sha256), sorted by path, and always
  holds the tagged manifest's own blob: a layout never names a blob it lacks.
- A tag is also an artifact version, whose grammar is narrower than OCI's: OCI allows
  a leading ``_`` (``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``), versions do not
  (``[A-Za-z0-9][A-Za-z0-9._+-]{0,127}``). Such a tag is refused (``tag_problem``),
  never rewritten: ``NAME@TAG`` must name the tag as pushed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from registry.core.canonical import canonical_bytes
from registry.core.digest import Algorithm, BlobDigests, Digest, digest_bytes
from registry.core.errors import InvalidManifestError
from registry.core.manifest import SCHEMA_V1, FileEntry, Manifest, validate_version

OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs/sha256/"
OCI_LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
ENGINE = "oci-image"
"""``runtime.engine`` of every image artifact."""


@dataclass(frozen=True, slots=True)
class ImageDescriptor:
    """The tagged manifest as an OCI descriptor: its media type, sha256 and length."""

    media_type: str
    digest: Digest
    size_bytes: int

    def __post_init__(self) -> None:
        if self.digest.algorithm is not Algorithm.SHA256:
            raise ValueError(f"an OCI descriptor names its manifest by sha256, not {self.digest}")
        if self.size_bytes < 0:
            raise ValueError(f"descriptor size must be >= 0, got {self.size_bytes}")
        if not self.media_type:
            raise ValueError("descriptor media type must not be empty")


@dataclass(frozen=True, slots=True)
class ImageLayout:
    """What the image artifact consists of: the two files only the layout has (their
    exact bytes, by path) and the Reliquary manifest listing every file of the layout."""

    files: dict[str, bytes]
    manifest: Manifest

    @property
    def manifest_bytes(self) -> bytes:
        """The manifest's canonical bytes: what ``ArtifactService.push`` takes."""
        return self.manifest.canonical_bytes()


def tag_problem(tag: str) -> str | None:
    """Why OCI tag ``tag`` cannot be an artifact version, or None when it can.

    Every OCI tag but one starting with ``_`` is a valid version; callers validate the
    OCI tag grammar first.
    """
    if not validate_version(tag):
        return None
    return (
        f"tag {tag!r} cannot be pushed here: every tag is also the version of the image "
        "artifact NAME@TAG, and versions must match [A-Za-z0-9][A-Za-z0-9._+-]{0,127} "
        "(OCI allows a leading '_', this registry does not); push it under a tag that "
        "starts with a letter or digit"
    )


def index_json(top: ImageDescriptor, tag: str) -> bytes:
    """``index.json``: an image index naming ``top`` as ``tag``, RFC 8785 canonical."""
    return canonical_bytes(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    "mediaType": top.media_type,
                    "digest": str(top.digest),
                    "size": top.size_bytes,
                    "annotations": {REF_NAME: tag},
                }
            ],
        }
    )


def _entry(path: str, digests: BlobDigests) -> FileEntry:
    return FileEntry(
        path=path,
        size=digests.size_bytes,
        blake3=digests.blake3.hex,
        sha256=digests.sha256.hex,
    )


def _blob_entries(top: ImageDescriptor, blobs: Iterable[BlobDigests]) -> list[FileEntry]:
    """One ``blobs/sha256/<hex>`` entry per distinct blob.

    Raises ValueError (the caller broke its contract): the tagged manifest's blob is
    missing or has another size, or two entries share a sha256 but not a blake3.
    """
    by_sha256: dict[str, BlobDigests] = {}
    for digests in blobs:
        seen = by_sha256.setdefault(digests.sha256.hex, digests)
        if seen != digests:
            raise ValueError(f"two different blobs claim {digests.sha256}: {seen} and {digests}")
    own = by_sha256.get(top.digest.hex)
    if own is None or own.size_bytes != top.size_bytes:
        raise ValueError(
            f"the layout must hold the tagged manifest {top.digest} ({top.size_bytes} bytes) "
            "among its blobs"
        )
    return [_entry(BLOBS_DIR + hex_part, d) for hex_part, d in by_sha256.items()]


def build_image_layout(
    name: str, tag: str, top: ImageDescriptor, blobs: Iterable[BlobDigests]
) -> ImageLayout:
    """The OCI image layout of ``name:tag``, the manifest ``top``, as artifact ``name@tag``.

    ``blobs``: the digests of every blob the layout holds (repeats allowed): the tagged
    manifest's own bytes, its config and layers and, for an index, every child manifest
    and its config and layers. The caller gathers them from the manifests it validated.

    Raises:
        InvalidManifestError: the tag cannot be a version (``tag_problem``), or the name
            is not an artifact name.
        ValueError: ``blobs`` lacks the tagged manifest (a caller's bug).
    """
    if (why := tag_problem(tag)) is not None:
        raise InvalidManifestError([why])
    small = {OCI_LAYOUT_FILE: OCI_LAYOUT_BYTES, INDEX_FILE: index_json(top, tag)}
    entries = _blob_entries(top, blobs)
    entries += [_entry(path, digest_bytes(data)) for path, data in small.items()]
    manifest = Manifest(
        schema=SCHEMA_V1,
        kind="image",
        name=name,
        version=tag,
        files=tuple(sorted(entries, key=lambda f: f.path)),
        runtime={"engine": ENGINE, "manifest": str(top.digest), "media_type": top.media_type},
    )
    return ImageLayout(files=small, manifest=manifest)
