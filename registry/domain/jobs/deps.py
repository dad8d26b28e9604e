"""Dependency markers for job handlers."""

from litestar.di import NamedDependency

from registry.domain.jobs.services import JobService

JobServiceDep = NamedDependency[JobService]
