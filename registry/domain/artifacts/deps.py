"""Dependency markers for artifact handlers."""

from litestar.di import NamedDependency

from registry.domain.artifacts.services import ArtifactService

ArtifactServiceDep = NamedDependency[ArtifactService]
