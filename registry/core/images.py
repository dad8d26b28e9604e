"""OCI image names, and the pin by which a model names the image it runs in.

Invariants:
- ``NAME`` is the repository name grammar of the distribution-spec v1.1 ("Pulling
  manifests"): lowercase path components joined by ``/``, at most ``MAX_NAME``
  characters. ``/v2`` routes (``registry.domain.oci.routes``) and runtime pins use this
  one grammar.
- An ``ImagePin`` is ``NAME@sha256:<64 lowercase hex>``: a digest, never a tag. A tag
  names whatever was pushed under it last in most registries, so a pin by tag would not
  say which bytes the model was verified with; ``pin_problem`` refuses one and says how
  to find the digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.core.digest import Algorithm, Digest, is_hex64
from registry.core.errors import CoreError

# distribution-spec v1.1, "Pulling manifests": path components joined by "/"
NAME = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
NAME_PATTERN = re.compile(NAME)
MAX_NAME = 255

PIN_FORM = "NAME@sha256:<64 lowercase hex>"
_MAX_SHOWN = 300  # characters of a bad value echoed back in a problem


class InvalidImagePinError(CoreError):
    """A runtime image reference that is not ``NAME@sha256:<64 lowercase hex>``."""


def image_name_problem(name: str) -> str | None:
    """Why ``name`` is no OCI repository name (None when it is one)."""
    if len(name) > MAX_NAME:
        return f"repository name is {len(name)} characters; at most {MAX_NAME} are allowed"
    if not NAME_PATTERN.fullmatch(name):
        return (
            f"repository name {name[:_MAX_SHOWN]!r} must be lowercase path components "
            "[a-z0-9]+ joined by '.', '_', '__' or '-'s, separated by '/'"
        )
    return None


def _pin_the_digest(name: str, tag: str) -> str:
    return (
        f"pin the digest instead: `skopeo inspect --format '{{{{.Digest}}}}' "
        f"docker://HOST/{name}:{tag}` prints it, then set runtime.image = "
        f'"{name}@sha256:<that hex>"'
    )


def pin_problem(text: str) -> str | None:
    """Why ``text`` is no runtime image pin ``NAME@sha256:<64 lowercase hex>`` (None when it
    is one). A tag (``NAME:TAG``, ``NAME@TAG``, ``NAME:TAG@sha256:…``) is refused with the
    command that prints the digest to pin."""
    shown = text[:_MAX_SHOWN]
    name, at, reference = text.partition("@")
    if not at:
        repository, colon, tag = name.rpartition(":")
        if colon and "/" not in tag:
            return f"runtime.image {shown!r} names tag {tag!r}, which can move; " + (
                _pin_the_digest(repository, tag)
            )
        return f"runtime.image {shown!r} names no digest; " + _pin_the_digest(name, "TAG")
    algorithm, colon, hex_part = reference.partition(":")
    if not colon:
        return f"runtime.image {shown!r} names tag {reference!r} after '@', which can move; " + (
            _pin_the_digest(name, reference)
        )
    if ":" in name:
        repository = name.rpartition(":")[0]
        return (
            f"runtime.image {shown!r} names both a tag and a digest; keep only the digest: "
            f"{repository}@{reference}"
        )
    if algorithm != Algorithm.SHA256.value:
        return (
            f"runtime.image {shown!r}: the digest must be the image manifest's sha256 "
            f"(its OCI digest), not {algorithm!r}: {PIN_FORM}"
        )
    if not is_hex64(hex_part):
        return f"runtime.image {shown!r}: the sha256 must be 64 lowercase hex characters"
    why = image_name_problem(name)
    return None if why is None else f"runtime.image {shown!r}: {why}"


@dataclass(frozen=True, slots=True)
class ImagePin:
    """A valid runtime image pin: repository ``name`` and the manifest's sha256 ``digest``."""

    name: str
    digest: Digest

    @classmethod
    def parse(cls, text: str) -> ImagePin:
        """Raises InvalidImagePinError saying what is wrong and what to pin instead."""
        why = pin_problem(text)
        if why is not None:
            raise InvalidImagePinError(why)
        name, _, reference = text.partition("@")
        return cls(name, Digest.parse(reference))

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"
