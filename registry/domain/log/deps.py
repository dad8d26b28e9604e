"""Dependency markers for log handlers."""

from litestar.di import NamedDependency

from registry.domain.log.services import TransparencyLog

TransparencyLogDep = NamedDependency[TransparencyLog]
