"""How the storage tests open a blob store: one recipe per backend (the ``store_recipe``
fixture in tests/storage/conftest.py gives each in turn)."""

from __future__ import annotations

from typing import Protocol

from registry.storage.base import BlobStore, StoreClock


class StoreRecipe(Protocol):
    """Opens one backend's store; ``now`` replaces its own clock (see ``StoreClock``)."""

    def __call__(self, *, now: StoreClock | None = None) -> BlobStore: ...
