"""Dependency markers every context's controllers may ask for: settings and metrics.

The app (``registry.app``) provides both, one instance each per app.
"""

from litestar.di import NamedDependency

from registry.metrics import Metrics
from registry.settings import Settings

SettingsDep = NamedDependency[Settings]
MetricsDep = NamedDependency[Metrics]
