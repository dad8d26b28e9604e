"""The clock services read the time from: one function, so a test can move time
instead of sleeping. Production always uses ``utc_now``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware, in UTC."""


def utc_now() -> datetime:
    return datetime.now(UTC)
