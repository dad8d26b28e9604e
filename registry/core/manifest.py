"""The artifact manifest, ``reliquary.manifest.v1``.

A manifest is RFC 8785 canonical JSON; the blake3 of its exact bytes is the
artifact digest. A ``Manifest`` object is always valid:

- ``name`` is lowercase path segments ``[a-z0-9][a-z0-9._-]*`` joined by ``/``.
- ``files`` is sorted by path, unique, and every path is a safe relative POSIX
  path: no ``..`` or ``.`` segments, no leading ``/``, no backslashes or control
  characters, no file that is also another file's directory, and no two paths
  equal ignoring case (they would collide on case-insensitive filesystems).
- every file digest is 64 lowercase hex; sizes are integers >= 0.
- unknown fields are refused.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from registry.core.canonical import canonical_bytes, require_canonical
from registry.core.digest import BlobDigests, Digest, digest_bytes, is_hex64
from registry.core.errors import CoreError, InvalidManifestError

SCHEMA_V1 = "reliquary.manifest.v1"
KINDS = ("model", "image", "dataset", "reference-inputs")
MAX_FILE_SIZE = 2**53 - 1  # the largest integer JSON carries exactly

Kind = Literal["model", "image", "dataset", "reference-inputs"]
Scalar = str | int | float | bool

_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_LABEL_KEY = re.compile(r"[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?")
_MAX_NAME = 255
_MAX_PATH = 4096


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    size: int
    blake3: str
    sha256: str


class Reference(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    inputs: str


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    schema: str
    kind: Kind
    name: str
    version: str
    files: tuple[FileEntry, ...]
    runtime: dict[str, Scalar] | None = None
    reference: Reference | None = None
    metrics: dict[str, int | float] = {}
    labels: dict[str, str] = {}
    parents: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise InvalidManifestError(problems)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, leaving out optional fields that are empty."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        for key in ("runtime", "reference"):
            if out.get(key) is None:
                out.pop(key, None)
        for key in ("metrics", "labels", "parents"):
            if not out.get(key):
                out.pop(key, None)
        return out

    def canonical_bytes(self) -> bytes:
        return canonical_bytes(self.to_dict())

    @property
    def total_size_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """A valid manifest beside the exact bytes it was parsed from, and their digests."""

    manifest: Manifest
    raw: bytes
    digests: BlobDigests


def validate_name(name: str) -> list[str]:
    """Problems with an artifact name (empty when valid)."""
    if not name or len(name) > _MAX_NAME:
        return [f"name must be 1..{_MAX_NAME} characters"]
    bad = [s for s in name.split("/") if not _SEGMENT.fullmatch(s)]
    if bad:
        return [
            f"name {name!r}: segment {bad[0]!r} must match [a-z0-9][a-z0-9._-]* "
            "(lowercase segments joined by '/')"
        ]
    return []


def validate_version(version: str) -> list[str]:
    if not _VERSION.fullmatch(version):
        return [f"version {version!r} must match [A-Za-z0-9][A-Za-z0-9._+-]{{0,127}}"]
    return []


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe relative POSIX file path, or None when it is."""
    if not path or len(path) > _MAX_PATH:
        return f"path must be 1..{_MAX_PATH} characters"
    if path.startswith("/"):
        return f"path {path!r} is absolute"
    if "\\" in path:
        return f"path {path!r} contains a backslash"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in path):
        return f"path {path!r} contains control or format characters"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return f"path {path!r} has an empty, '.' or '..' segment"
    return None


def _files_problems(files: tuple[FileEntry, ...]) -> list[str]:
    problems: list[str] = []
    paths = [f.path for f in files]
    for f in files:
        if (why := path_problem(f.path)) is not None:
            problems.append(why)
        if not 0 <= f.size <= MAX_FILE_SIZE:
            problems.append(f"file {f.path!r}: size must be 0..{MAX_FILE_SIZE}")
        for alg, hex_part in (("blake3", f.blake3), ("sha256", f.sha256)):
            if not is_hex64(hex_part):
                problems.append(f"file {f.path!r}: {alg} must be 64 lowercase hex characters")
    if paths != sorted(paths):
        problems.append("files must be sorted by path")
    if len(set(paths)) != len(paths):
        problems.append("file paths must be unique")
    folded: dict[str, str] = {}
    for p in paths:
        key = p.casefold()
        if key in folded and folded[key] != p:
            problems.append(f"paths {folded[key]!r} and {p!r} differ only by case")
        folded[key] = p
    path_set = set(paths)
    for p in paths:
        parts = p.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in path_set:
                problems.append(f"path {'/'.join(parts[:i])!r} is both a file and a directory")
    return problems


def _digest_problem(text: str, where: str) -> str | None:
    try:
        Digest.parse(text)
    except CoreError as exc:
        return f"{where}: {exc}"
    return None


def _problems(m: Manifest) -> list[str]:
    problems: list[str] = []
    if m.schema != SCHEMA_V1:
        problems.append(f"schema must be {SCHEMA_V1!r}")
    problems += validate_name(m.name)
    problems += validate_version(m.version)
    problems += _files_problems(m.files)
    for key, value in m.metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"metric {key!r} must be finite")
    for key in m.labels:
        if not _LABEL_KEY.fullmatch(key):
            problems.append(f"label key {key!r} must match [a-z0-9][a-z0-9._/-]*, max 63")
    if m.reference is not None:
        why = _digest_problem(m.reference.inputs, "reference.inputs")
        problems += [why] if why else []
    for i, parent in enumerate(m.parents):
        why = _digest_problem(parent, f"parents[{i}]")
        problems += [why] if why else []
    return problems


def parse_manifest(raw: bytes) -> ParsedManifest:
    """Parse and validate manifest bytes, which must already be canonical.

    Raises:
        InvalidJSONError: not strict JSON.
        NonCanonicalJSONError: valid JSON, not RFC 8785 canonical (carries the expected bytes).
        InvalidManifestError: canonical JSON that breaks the schema; lists every problem.
    """
    value = require_canonical(raw)
    try:
        manifest = msgspec.convert(value, Manifest, strict=True)
    except msgspec.ValidationError as exc:
        if isinstance(exc.__cause__, InvalidManifestError):  # raised by __post_init__
            raise InvalidManifestError(exc.__cause__.problems) from None
        raise InvalidManifestError([str(exc)]) from None
    return ParsedManifest(manifest=manifest, raw=raw, digests=digest_bytes(raw))
