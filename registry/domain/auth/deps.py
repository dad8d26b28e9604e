"""Dependency markers for auth handlers."""

from litestar.di import NamedDependency

from registry.domain.auth.services import TokenService

TokenServiceDep = NamedDependency[TokenService]
