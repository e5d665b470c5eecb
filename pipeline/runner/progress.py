"""Live progress: units done out of total and frames per second, logged."""

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

    def update(self, units: int, frames: int) -> None:
        self.units += units
        self.frames += frames
        now = time.monotonic()
        if now - self._last >= self.interval_s or self.units >= self.total:
            self._last = now
            elapsed = max(now - self.started, 1e-9)
            log.info("progress: %d/%d units, %d frames, %.1f frames/s", self.units,
                     self.total, self.frames, self.frames / elapsed)
