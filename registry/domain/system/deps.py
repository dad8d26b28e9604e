"""Dependency markers shared by every context: settings and metrics."""

from litestar.di import NamedDependency

from registry.domain.system.metrics import Metrics
from registry.domain.system.services import HealthService
from registry.settings import Settings

SettingsDep = NamedDependency[Settings]
MetricsDep = NamedDependency[Metrics]
HealthServiceDep = NamedDependency[HealthService]
