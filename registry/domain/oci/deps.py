"""Dependency markers for OCI handlers."""

from litestar.di import NamedDependency

from registry.domain.oci.services import OciService

OciServiceDep = NamedDependency[OciService]
