"""Dependency marker of the health check."""

from litestar.di import NamedDependency

from registry.domain.system.services import HealthService

HealthServiceDep = NamedDependency[HealthService]
