"""The images a model may pin: ``ImageLookup`` (``registry.domain.artifacts.images``)
answered from the OCI tables.

Invariants: a repository never loses a manifest and a tag never moves (nothing is
deleted through the API), so a manifest seen held stays held (a positive cache); tags
are read each time, since a new tag may name a manifest already held.
"""

from __future__ import annotations

import threading

from cachetools import LRUCache
from sqlalchemy.orm import Session, sessionmaker

from registry.domain.oci.repositories import OciRepository


class RuntimeImages:
    def __init__(self, reads: sessionmaker[Session]) -> None:
        self._reads = reads
        self._held: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=50_000)
        self._lock = threading.Lock()

    def holds_image(self, name: str, sha256_hex: str) -> bool:
        """Whether repository ``name`` holds the manifest whose sha256 is ``sha256_hex``."""
        with self._lock:
            if self._held.get((name, sha256_hex)):
                return True
        with self._reads() as session:
            held = OciRepository(session).holds_manifest(name, sha256_hex)
        if held:
            with self._lock:
                self._held[(name, sha256_hex)] = True
        return held

    def tags_of(self, name: str, sha256_hex: str) -> list[str]:
        """The tags of repository ``name`` that name that manifest, sorted."""
        with self._reads() as session:
            return OciRepository(session).tags_of(name, sha256_hex)
