"""Progress bars for long transfers: rich on a terminal, silent otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

Advance = Callable[[int], None]


def _ignore(_: int) -> None:
    return None


class TransferProgress:
    """``with TransferProgress(enabled) as p: advance = p.task("hashing", total)``.

    Enabled only when asked and stderr is a terminal, so scripts and CI stay quiet.
    The callbacks are thread-safe (rich locks internally).
    """

    def __init__(self, enabled: bool = True) -> None:
        self._progress: Progress | None = None
        if enabled and sys.stderr.isatty():
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=True,
            )

    def __enter__(self) -> TransferProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def task(self, description: str, total_bytes: int) -> Advance:
        """A callback that advances a new bar by a number of bytes."""
        progress = self._progress
        if progress is None:
            return _ignore
        task_id = progress.add_task(description, total=total_bytes)

        def advance(nbytes: int) -> None:
            progress.advance(task_id, nbytes)

        return advance
