"""Alembic migrations for the registry schema (``registry.db.models``).

Run them with ``reliquary-server db upgrade``; tests build every schema this way.
"""

from pathlib import Path

SCRIPT_LOCATION = str(Path(__file__).parent)
