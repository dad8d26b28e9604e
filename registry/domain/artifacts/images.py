"""What the artifacts context asks of the images this registry holds.

A model's ``runtime.image`` pins an OCI image by digest (``registry.core.images``).
Images live in the ``oci`` context, which imports this one, so this context names
only the question (``ImageLookup``) and ``registry.app`` plugs in the answer
(``registry.domain.oci.pins.RuntimeImages``). Images and tags are never removed and a
tag never moves, so a "yes" stays true.
"""

from __future__ import annotations

from typing import Protocol


class ImageLookup(Protocol):
    def holds_image(self, name: str, sha256_hex: str) -> bool:
        """Whether repository ``name`` holds the manifest whose sha256 is ``sha256_hex``."""
        ...

    def tags_of(self, name: str, sha256_hex: str) -> list[str]:
        """The tags of repository ``name`` that name that manifest, sorted."""
        ...


class NoImages:
    """The lookup of a registry that holds no image: every pin names a missing one."""

    def holds_image(self, name: str, sha256_hex: str) -> bool:
        return False

    def tags_of(self, name: str, sha256_hex: str) -> list[str]:
        return []
