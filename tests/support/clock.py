"""A clock tests move forward instead of sleeping.

``FakeClock`` reads the real time plus what the test added (``advance``): it still
moves with the real clock, so whatever another process, the kernel or S3 stamps now
lies in its past, and a test that advances it past a bound has really passed it.
Services take ``clock.now`` (aware UTC datetimes, ``registry.core.clock.Clock``), blob
stores ``clock.time`` (POSIX seconds, ``registry.storage.base.StoreClock``). It pickles,
so a store opened in another process can share it (as it stood when sent).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class FakeClock:
    def __init__(self, ahead_seconds: float = 0.0) -> None:
        self.ahead_seconds = ahead_seconds

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass at once."""
        self.ahead_seconds += seconds

    def time(self) -> float:
        return time.time() + self.ahead_seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)
