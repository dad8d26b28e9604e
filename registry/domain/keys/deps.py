"""Dependency markers for key handlers."""

from litestar.di import NamedDependency

from registry.domain.keys.services import KeyService

KeyServiceDep = NamedDependency[KeyService]
