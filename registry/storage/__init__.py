"""Blob storage backends behind one protocol (see ``base``)."""

from registry.storage.base import (
    BlobStore,
    BlobWriter,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    StoredBlobMissingError,
)

__all__ = [
    "BlobStore",
    "BlobWriter",
    "StorageError",
    "StorageFullError",
    "StorageUnavailableError",
    "StoredBlobMissingError",
]
