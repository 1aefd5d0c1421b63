"""The live progress bar: commands done, commands/s (over the last few seconds) and errors.

Refreshed from the event loop a few times a second (rich's own refresh thread is off, so that it
takes no GIL time from the replay in between).
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from bench.metrics import Recorder

REFRESH_S = 0.25
#: commands/s is measured over this many seconds
RATE_WINDOW_S = 3.0


class LiveProgress:
    """A rich progress bar fed from a Recorder."""

    def __init__(self, console: Console, total: int, *, enabled: bool = True,
                 description: str = "replay") -> None:
        self.enabled = enabled
        self.recorder: Recorder | None = None
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9,.0f} cmd/s"),
            TextColumn("[red]{task.fields[errors]:,} errors"),
            TextColumn("[dim]{task.fields[note]}"),
            TimeElapsedColumn(), console=console, auto_refresh=False, disable=not enabled,
            transient=False)
        self._task = self._progress.add_task(description, total=total, rate=0.0, errors=0,
                                             note="")
        self._window: collections.deque[tuple[float, int]] = collections.deque()
        self._ticker: asyncio.Task[Any] | None = None

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._progress.stop()

    def follow(self, recorder: Recorder) -> None:
        """Start refreshing from `recorder` until `stop()`."""
        self.recorder = recorder
        self._window.clear()
        if self.enabled and self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> None:
        """Stop refreshing; the bar is left showing the average rate of the whole run."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.refresh(final=True)

    def note(self, text: str, *, total: int | None = None, description: str | None = None) -> None:
        """Show a note (e.g. the phase) beside the bar."""
        fields: dict[str, Any] = {"note": text}
        if total is not None:
            fields["total"] = total
        if description is not None:
            fields["description"] = description
        self._progress.update(self._task, **fields)
        self._progress.refresh()

    def refresh(self, final: bool = False) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        now = time.perf_counter()
        window = self._window
        if final:
            window.clear()
            window.append((recorder.start, 0))
        window.append((now, recorder.done))
        while len(window) > 1 and now - window[0][0] > RATE_WINDOW_S and not final:
            window.popleft()
        start_t, start_done = window[0]
        rate = (recorder.done - start_done) / (now - start_t) if now > start_t else 0.0
        self._progress.update(self._task, completed=recorder.done, rate=rate,
                              errors=recorder.errors)
        self._progress.refresh()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            self.refresh()
