"""The artifact manifest, ``reliquary.manifest.v1``.

A manifest is RFC 8785 canonical JSON; the blake3 of its exact bytes is the
artifact digest. A ``Manifest`` object is always valid:

- ``name`` is lowercase path segments ``[a-z0-9][a-z0-9._-]*`` joined by ``/``.
- ``files`` is sorted by path, unique, and every path is a safe relative POSIX
  path that every common filesystem can hold as written (validators run on
  every OS; ``path_problems`` states each rule): no ``..`` or ``.`` segments, no
  leading ``/``, no backslashes, control characters or other characters Windows
  forbids (``< > : " | ? *``), no segment ending in a dot or space, no Windows
  device name (``CON``, ``nul.txt`` ...), no segment over 255 UTF-8 bytes, no
  file that is also another file's directory, and no two names (files or
  directories) equal ignoring case and Unicode normalization (one name on
  Windows and macOS).
- every file digest is 64 lowercase hex; sizes are integers >= 0.
- ``runtime.image``, when present, pins the runtime image by digest:
  ``NAME@sha256:<64 lowercase hex>`` (``registry.core.images``); a tag is refused.
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
from registry.core.datasets import Dataset, dataset_problems
from registry.core.digest import BlobDigests, Digest, digest_bytes, is_hex64
from registry.core.errors import CoreError, InvalidManifestError
from registry.core.images import ImagePin, pin_problem

SCHEMA_V1 = "reliquary.manifest.v1"
MANIFEST_MEDIA_TYPE = "application/vnd.reliquary.manifest.v1+json"  # its bytes on the wire
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
    dataset: Dataset | None = None  # kind dataset only: what its files hold (core.datasets)

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise InvalidManifestError(problems)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, leaving out optional fields that are empty."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        for key in ("runtime", "reference", "dataset"):
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

    @property
    def runtime_image(self) -> ImagePin | None:
        """The image ``runtime.image`` pins, or None when the manifest pins none."""
        value = None if self.runtime is None else self.runtime.get("image")
        return None if value is None else ImagePin.parse(str(value))


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


_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [
        f"{port}{n}"
        for port in ("COM", "LPT")
        for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")
    ]
)
_MAX_SEGMENT_BYTES = 255


def _segment_problem(path: str, segment: str) -> str | None:
    """Why one segment of ``path`` cannot be written as named on some filesystem."""
    if segment in ("", ".", ".."):
        return f"path {path!r} has an empty, '.' or '..' segment"
    size = len(segment.encode("utf-8"))
    if size > _MAX_SEGMENT_BYTES:
        return (
            f"path {path[:80]!r}...: a segment is {size} bytes in UTF-8; filesystems hold "
            f"at most {_MAX_SEGMENT_BYTES} bytes per name"
        )
    if segment[-1] in ". ":
        return (
            f"path {path!r}: segment {segment!r} ends with a dot or a space, which Windows "
            "drops (the file would get another name)"
        )
    if segment.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        return (
            f"path {path!r}: segment {segment!r} is a Windows device name (CON, PRN, AUX, "
            "NUL, COM0-9, LPT0-9, with or without an extension), which no file can have there"
        )
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe relative POSIX file path that every common filesystem
    can hold as written, or None when it is. Rules, in order: length, not absolute, no
    backslash, no control or format character, none of ``< > : " | ? *``, then per
    segment: not empty, ``.`` or ``..``; at most 255 UTF-8 bytes; no trailing dot or
    space; not a Windows device name."""
    if not path or len(path) > _MAX_PATH:
        return f"path must be 1..{_MAX_PATH} characters"
    if path.startswith("/"):
        return f"path {path!r} is absolute"
    if "\\" in path:
        return f"path {path!r} contains a backslash"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in path):
        return f"path {path!r} contains control or format characters"
    forbidden = sorted(set(path) & _WINDOWS_FORBIDDEN)
    if forbidden:
        return (
            f"path {path!r} contains {' '.join(forbidden)}, which Windows forbids in names "
            '(< > : " | ? *)'
        )
    for segment in path.split("/"):
        if (why := _segment_problem(path, segment)) is not None:
            return why
    return None


def _folded(name: str) -> str:
    """The key under which case-insensitive, normalising filesystems (Windows, macOS)
    see ``name``: casefolded, then NFC (so a composed and a decomposed é are one)."""
    return unicodedata.normalize("NFC", name.casefold())


def _collisions(paths: list[str]) -> list[str]:
    """Files and directories whose names differ only by case or Unicode normalization."""
    problems: list[str] = []
    seen: dict[str, tuple[str, str, str]] = {}  # folded name -> (name, kind, a path using it)
    reported: set[tuple[str, str]] = set()
    for p in paths:
        parts = p.split("/")
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            kind = "file" if i == len(parts) else "directory"
            first = seen.setdefault(_folded(name), (name, kind, p))
            if first[0] == name or (first[0], name) in reported:
                continue
            reported.add((first[0], name))
            problems.append(
                f"paths {first[2]!r} and {p!r} collide on case-insensitive filesystems: "
                f"{first[1]} {first[0]!r} and {kind} {name!r} differ only by case or "
                "Unicode normalization"
            )
    return problems


def _files_problems(files: tuple[FileEntry, ...]) -> list[str]:
    problems: list[str] = []
    paths = [f.path for f in files]
    for f in files:
        if not 0 <= f.size <= MAX_FILE_SIZE:
            problems.append(f"file {f.path!r}: size must be 0..{MAX_FILE_SIZE}")
        for alg, hex_part in (("blake3", f.blake3), ("sha256", f.sha256)):
            if not is_hex64(hex_part):
                problems.append(f"file {f.path!r}: {alg} must be 64 lowercase hex characters")
    if paths != sorted(paths):
        problems.append("files must be sorted by path")
    return path_set_problems(paths) + problems


def path_set_problems(paths: list[str]) -> list[str]:
    """Why these file paths cannot all exist in one directory tree on every common
    filesystem (empty when they can): each path's ``path_problem``, duplicates, a file
    that is another's directory, names equal ignoring case. ``reliquary push`` checks a
    directory with this before hashing it; manifests are checked with it too."""
    problems = [why for p in paths if (why := path_problem(p)) is not None]
    if len(set(paths)) != len(paths):
        problems.append("file paths must be unique")
    path_set = set(paths)
    for p in paths:
        parts = p.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in path_set:
                problems.append(f"path {'/'.join(parts[:i])!r} is both a file and a directory")
    return problems + _collisions(paths)


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
    if m.runtime is not None and "image" in m.runtime:
        image = m.runtime["image"]
        why = (
            pin_problem(image)
            if isinstance(image, str)
            else "runtime.image must be a string NAME@sha256:<64 lowercase hex>"
        )
        problems += [why] if why else []
    if m.reference is not None:
        why = _digest_problem(m.reference.inputs, "reference.inputs")
        problems += [why] if why else []
    for i, parent in enumerate(m.parents):
        why = _digest_problem(parent, f"parents[{i}]")
        problems += [why] if why else []
    sizes = {f.path: f.size for f in m.files} if m.kind == "dataset" else {}
    return problems + dataset_problems(m.kind, m.dataset, sizes)


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
