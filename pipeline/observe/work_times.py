"""WorkTimes: what a worker measured while doing one call (a decode task, a
model actor's batch), handed back to the driver with the call's results.

Busy time is measured where the work runs, not on the driver: a driver-side
clock would count the time a call waited for a free worker or for the
object store as work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class GpuReading:
    """One model actor's GPU after a call: utilisation (fraction of the last
    sample period the GPU was busy, 0-1, as NVML reports it) and the peak
    memory its tensors held (bytes)."""

    utilisation: float | None
    memory_bytes: int


@dataclass
class WorkTimes:
    """Seconds spent per stage in one call, and bytes fetched from storage.

    Fields are written by one thread each (in-actor decoding fetches and
    decodes in a prefetch thread while the models run in the caller's)."""

    probe_s: float = 0.0
    fetch_s: float = 0.0
    fetch_bytes: int = 0
    decode_s: float = 0.0
    analyses_s: dict[str, float] = field(default_factory=dict)  # analysis name -> seconds
    gpu: GpuReading | None = None

    @contextmanager
    def analysis(self, name: str) -> Iterator[None]:
        """Add the time spent in the `with` body to analysis `name`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.analyses_s[name] = self.analyses_s.get(name, 0.0) + elapsed_since(start)


class Stopwatch:
    """Seconds spent inside `with stopwatch:` blocks, summed (not re-entrant)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.total += elapsed_since(self._start)


def elapsed_since(start: float) -> float:
    """Seconds since `start` (a perf_counter reading), never negative or NaN."""
    seconds = time.perf_counter() - start
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0
