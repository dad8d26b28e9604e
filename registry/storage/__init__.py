"""Blob storage backends behind one protocol (see ``base``)."""

from registry.storage.base import (
    BlobStore,
    BlobWriter,
    StorageError,
    StorageUnavailableError,
    StoredBlobMissingError,
)

__all__ = [
    "BlobStore",
    "BlobWriter",
    "StorageError",
    "StorageUnavailableError",
    "StoredBlobMissingError",
]
