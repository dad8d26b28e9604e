"""Wakes job claims waiting in this process when this process makes a job claimable.

A long-polled claim (``POST /v1/jobs/claim`` with ``wait_seconds``) waits on this
signal and, between signals, polls the database: replicas are stateless and jobs
queued by another replica (or a lease expiring) raise no signal here.

Invariants:
- ``notify`` may be called from any thread; waiters run on event loops.
- A notification is never lost between a waiter's last claim attempt and its wait:
  the waiter takes a ``generation`` before trying, and ``wait`` returns at once if
  a notification came since.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class WorkSignal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    @property
    def generation(self) -> int:
        """Changes with every ``notify``: take it before looking for work."""
        return self._generation

    def notify(self) -> None:
        """Work may be claimable now: wake every waiter."""
        with self._lock:
            self._generation += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def wait(self, since: int, seconds: float, event: asyncio.Event | None = None) -> bool:
        """Until a ``notify`` after generation ``since``, or ``seconds``, or (the caller's
        own reason to stop) ``event`` is set; True unless the time ran out. ``event`` is
        set by a ``notify``, and left set."""
        event = event or asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._generation != since:
                return True
            self._waiters.add(waiter)
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)
