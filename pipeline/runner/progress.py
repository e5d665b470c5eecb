"""Live progress: units done out of those planned so far, and frames per second."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("vidlake.progress")


class ProgressReporter:
    """Logs a progress line at most every `interval_s` seconds."""

    def __init__(self, total_units: int, interval_s: float = 2.0) -> None:
        self.total = total_units
        self.interval_s = interval_s
        self.units = 0
        self.frames = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._first: tuple[float, int] | None = None  # (time, frames) at the first result
        self._latest = self.started

    def update(self, units: int, frames: int) -> None:
        now = time.monotonic()
        if self._first is None:
            self._first = (now, frames)
        self.units += units
        self.frames += frames
        self._latest = now
        if now - self._last >= self.interval_s:
            self._last = now
            elapsed = max(now - self.started, 1e-9)
            # videos are planned as the run goes: the total grows until the last is
            log.info("progress: %d of %d units planned so far, %d frames, %.1f frames/s",
                     self.units, self.total, self.frames, self.frames / elapsed)

    @property
    def steady_frames_per_s(self) -> float:
        """Frames/s from the first result to the last: start-up and model loading
        left out."""
        if self._first is None or self._latest <= self._first[0]:
            return 0.0
        return (self.frames - self._first[1]) / (self._latest - self._first[0])
