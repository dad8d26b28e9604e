"""Reliquary's Python SDK and ``reliquary`` CLI; reaches the registry over HTTP only.

Invariant: nothing here imports the server (``registry.db``, ``storage``,
``domain``, ``app``, ``settings``); shared rules come from ``registry.core``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reliquary")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
