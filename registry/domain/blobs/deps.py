"""Dependency markers for blob handlers."""

from litestar.di import NamedDependency

from registry.domain.blobs.services import BlobService
from registry.domain.blobs.uploads import UploadService

BlobServiceDep = NamedDependency[BlobService]
UploadServiceDep = NamedDependency[UploadService]
