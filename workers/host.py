"""The host fingerprint a reproducibility statement carries: CPU, OS, Python, library versions."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from registry.core.predicates import Host


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def fingerprint(libraries: tuple[str, ...]) -> Host:
    """This host, and the installed versions of ``reliquary`` and ``libraries``
    (``machine``, the architecture, rides along as a field the predicate keeps)."""
    versions: dict[str, str | int | float | bool | None] = {}
    for name in ("reliquary", *libraries):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return Host(
        cpu=cpu_model(),
        os=platform.platform(),
        python=platform.python_version(),
        libraries=versions,
        extra={"machine": platform.machine()},
    )
