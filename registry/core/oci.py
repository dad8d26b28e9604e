"""OCI image manifests and indexes, and Docker schema 2 manifests and lists, as pushed to
``/v2`` (image-spec v1.1, distribution-spec v1.1 "Pushing Manifests"), parsed strictly.

Invariants of an ``OciManifest`` (``parse_oci_manifest`` builds nothing else):
- its media type is one of ``MEDIA_TYPES`` and agrees with the ``Content-Type`` it was
  pushed with (a body without ``mediaType`` takes the ``Content-Type``'s);
- its bytes are strict JSON (``loads_strict``), ``schemaVersion`` is 2; Docker schema 1
  is refused whichever way it is announced;
- an image manifest has a ``config`` and ``layers`` and no ``manifests``; an index has
  ``manifests`` and neither ``config`` nor ``layers``;
- every descriptor has a media type of RFC 6838 shape, a ``sha256`` digest (the only
  algorithm this registry names content by) and a size in 0..2**63-1; none names
  ``urls`` (a foreign layer: the registry would serve a manifest whose layer it never
  holds); embedded ``data`` decodes to bytes of that digest and size;
- ``digests`` are those of the exact bytes received: nothing is re-serialised, and
  fields this module does not know are allowed and kept (in the bytes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgspec

from registry.core.canonical import loads_strict
from registry.core.digest import BlobDigests, Digest, digest_bytes, is_hex64
from registry.core.errors import InvalidDigestError, InvalidOciManifestError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
MEDIA_TYPES = IMAGE_MANIFESTS | INDEXES
SCHEMA1 = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
MAX_SIZE = 2**63 - 1  # a descriptor's size is an int64

# image-spec descriptor.md: RFC 6838 type "/" subtype, each 1..127 restricted-name chars
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
# image-spec descriptor.md: algorithm ":" encoded
_DIGEST = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
_SCHEMA1_ADVICE = (
    "Docker schema 1 manifests are not accepted (deprecated, unsigned content); push a "
    f"schema 2 or OCI manifest ({OCI_MANIFEST} or {DOCKER_MANIFEST})"
)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A reference to content by media type, sha256 digest and size (image-spec
    descriptor.md), with the optional fields referrers answer with."""

    media_type: str
    digest: Digest
    size_bytes: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class OciManifest:
    """A parsed, valid manifest or index; ``digests`` are of its exact bytes."""

    media_type: str
    digests: BlobDigests
    config: Descriptor | None  # image manifests only
    layers: tuple[Descriptor, ...]  # image manifests only
    manifests: tuple[Descriptor, ...]  # indexes only: the child manifests
    subject: Descriptor | None
    artifact_type: str | None  # artifactType, else an image manifest's config.mediaType
    annotations: Mapping[str, str]

    @property
    def digest(self) -> Digest:
        """The OCI name of the manifest: the sha256 of its bytes."""
        return self.digests.sha256

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """The blobs the manifest references: its config, then its layers."""
        return self.layers if self.config is None else (self.config, *self.layers)


def parse_sha256(text: str) -> Digest:
    """An OCI digest naming content here: ``sha256:<64 lowercase hex>``.

    Raises:
        InvalidDigestError: not ``algorithm:encoded``, another algorithm, or bad hex.
    """
    shown = text if len(text) <= 80 else f"{text[:80]}..."
    m = _DIGEST.fullmatch(text)
    if m is None:
        raise InvalidDigestError(f"{shown!r} is not a digest; expected sha256:<64 hex>")
    algorithm, encoded = m.groups()
    if algorithm != "sha256":
        raise InvalidDigestError(
            f"digest algorithm {algorithm[:20]!r} is not supported: this registry names "
            "content by sha256 only (sha256:<64 hex>)"
        )
    if not is_hex64(encoded):
        raise InvalidDigestError(
            f"{shown!r}: a sha256 digest is 64 lowercase hex characters after 'sha256:'"
        )
    return Digest.sha256(encoded)


def media_type_of(content_type: str | None) -> str | None:
    """The media type of a ``Content-Type`` value (parameters dropped, lowercased), or
    None when there is none."""
    if content_type is None:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type or None


def _invalid(where: str, problem: str) -> InvalidOciManifestError:
    return InvalidOciManifestError(f"{where}: {problem}" if where else problem)


def _media_type(value: Any, where: str) -> str:
    if not isinstance(value, str) or _MEDIA_TYPE.fullmatch(value) is None:
        raise _invalid(
            where, f"{_shown(value)} is not a media type (type/subtype, e.g. {OCI_MANIFEST})"
        )
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _annotations(value: Any, where: str) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _invalid(where, "annotations must be an object of string values")
    return MappingProxyType(dict(value))


def _check_data(value: Any, digest: Digest, size: int, where: str) -> None:
    """Embedded ``data`` (image-spec 1.1): base64 of exactly the described bytes."""
    if not isinstance(value, str):
        raise _invalid(where, "data must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _invalid(where, "data is not base64 (RFC 4648, with padding)") from None
    if len(data) != size or hashlib.sha256(data).hexdigest() != digest.hex:
        raise _invalid(
            where, f"data holds {len(data)} bytes that are not the {size} bytes of {digest}"
        )


def parse_descriptor(value: Any, where: str) -> Descriptor:
    """A descriptor (``where`` names it in errors: ``layers[2]``).

    Raises:
        InvalidOciManifestError: a missing or malformed field, another digest
            algorithm, or ``urls`` (a foreign layer).
    """
    if not isinstance(value, dict):
        raise _invalid(where, "a descriptor must be an object {mediaType, digest, size}")
    for key in ("mediaType", "digest", "size"):
        if key not in value:
            raise _invalid(where, f"descriptor has no {key}")
    media_type = _media_type(value["mediaType"], f"{where}.mediaType")
    if not isinstance(value["digest"], str):
        raise _invalid(f"{where}.digest", "must be a string sha256:<64 hex>")
    try:
        digest = parse_sha256(value["digest"])
    except InvalidDigestError as exc:
        raise _invalid(f"{where}.digest", str(exc)) from None
    size = value["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise _invalid(f"{where}.size", f"{_shown(size)} is not a byte count in 0..{MAX_SIZE}")
    if "urls" in value:
        raise _invalid(
            where,
            "names urls (a foreign, non-distributable layer): this registry serves only "
            "content it holds; push the layer's bytes as a blob and a manifest without urls",
        )
    if "data" in value:
        _check_data(value["data"], digest, size, f"{where}.data")
    if "platform" in value and not isinstance(value["platform"], dict):
        raise _invalid(f"{where}.platform", "must be an object")
    artifact_type = None
    if "artifactType" in value:
        artifact_type = _media_type(value["artifactType"], f"{where}.artifactType")
    annotations = _annotations(value.get("annotations"), f"{where}.annotations")
    return Descriptor(media_type, digest, size, artifact_type, annotations)


def _media_type_agreed(doc: dict[str, Any], content_type: str | None) -> str:
    """The manifest's media type: its ``mediaType``, which the ``Content-Type`` must
    repeat when both are given."""
    announced = media_type_of(content_type)
    if announced in SCHEMA1:
        raise InvalidOciManifestError(_SCHEMA1_ADVICE)
    declared = doc.get("mediaType")
    if declared is not None and (not isinstance(declared, str) or not declared):
        raise _invalid("mediaType", f"must be a media type, not {_shown(declared)}")
    if declared in SCHEMA1:
        raise InvalidOciManifestError(_SCHEMA1_ADVICE)
    media_type = declared or announced
    if media_type is None:
        raise InvalidOciManifestError(
            "the manifest has no mediaType and the request no Content-Type; send "
            f"Content-Type: {OCI_MANIFEST} (or the manifest's own media type)"
        )
    if media_type not in MEDIA_TYPES:
        raise InvalidOciManifestError(
            f"media type {media_type[:120]!r} is not a manifest this registry accepts; "
            f"accepted: {', '.join(sorted(MEDIA_TYPES))}"
        )
    if announced is not None and announced != media_type:
        raise InvalidOciManifestError(
            f"Content-Type {announced[:120]} disagrees with the manifest's mediaType "
            f"{media_type}; send Content-Type: {media_type}"
        )
    return media_type


def _descriptors(doc: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise _invalid(key, "must be an array of descriptors")
    return tuple(parse_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value))


def parse_oci_manifest(raw: bytes, content_type: str | None) -> OciManifest:
    """Parse and validate the bytes of a manifest PUT with ``content_type`` (the request's
    ``Content-Type`` header, parameters allowed; None when absent).

    The caller bounds the size of ``raw`` first.

    Raises:
        InvalidJSONError: not strict JSON.
        InvalidOciManifestError: anything else that breaks the module's invariants.
    """
    doc = loads_strict(raw)
    if not isinstance(doc, dict):
        raise InvalidOciManifestError("a manifest must be a JSON object")
    try:  # a lone surrogate escape ("\ud800") parses but is no Unicode text
        msgspec.json.encode(doc)
    except UnicodeEncodeError:
        raise InvalidOciManifestError(
            "a string holds a lone UTF-16 surrogate escape (such as \\ud800), which is no "
            "Unicode character; write the character itself or its full surrogate pair"
        ) from None
    version = doc.get("schemaVersion")
    if version == 1 and not isinstance(version, bool):
        raise InvalidOciManifestError(_SCHEMA1_ADVICE)
    media_type = _media_type_agreed(doc, content_type)
    if version != 2 or isinstance(version, bool):
        raise _invalid("schemaVersion", f"must be 2, not {_shown(version)}")
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    if media_type in IMAGE_MANIFESTS:
        if "manifests" in doc:
            raise _invalid("manifests", f"an image manifest ({media_type}) has no manifests")
        if "config" not in doc:
            raise _invalid("config", f"an image manifest ({media_type}) needs a config")
        config = parse_descriptor(doc["config"], "config")
        layers = _descriptors(doc, "layers")
    else:
        for key in ("config", "layers"):
            if key in doc:
                raise _invalid(key, f"an index ({media_type}) has no {key}")
        children = _descriptors(doc, "manifests")
    subject = None if doc.get("subject") is None else parse_descriptor(doc["subject"], "subject")
    artifact_type = None
    if "artifactType" in doc:
        artifact_type = _media_type(doc["artifactType"], "artifactType")
    elif config is not None:
        artifact_type = config.media_type
    return OciManifest(
        media_type=media_type,
        digests=digest_bytes(raw),
        config=config,
        layers=layers,
        manifests=children,
        subject=subject,
        artifact_type=artifact_type,
        annotations=_annotations(doc.get("annotations"), "annotations"),
    )
