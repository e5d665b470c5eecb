"""StageMeter: where a run's time goes, stage by stage, every few seconds.

Stages, in the order work flows (docs/tables.md, `run_stages`):

- `list`: the driver lists SOURCE (items: videos listed);
- `probe`: probe tasks read headers (items: videos);
- `fetch`: decode workers copy objects from storage (bytes);
- `decode`: decode workers turn units into frames (items: units);
- `analysis`: one row per analysis (its name in `analysis`): a model pool's
  actors, or the decode workers for analyses that need no model (shots);
- `commit`: the driver writes Parquet files and commit records (items: units).

The engine and the run loop report what happens as it happens (`add`, with
busy seconds measured where the work ran: WorkTimes), sample queue depths
(`sample`) and measure waits on the driver (`wait`). Every `interval_s`
seconds `tick` closes an interval: one row per stage seen so far, handed to
each sink (Ray's metrics) and kept for the `run_stages` table. Counts land in
the interval their call finished in, so a table's sums are the run's totals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import numpy as np

from pipeline.observe.work_times import GpuReading, WorkTimes

STAGES = ("list", "probe", "fetch", "decode", "analysis", "commit")
INTERVAL_S = 5.0  # a row per stage every 5 s: a 10-hour run is ~43k rows
SAMPLE_EVERY_S = 0.2  # queue depths are sampled at most this often
FOLD_BELOW = 0.2  # a last interval shorter than this share of INTERVAL_S joins the one before

StageKey = tuple[str, str | None]  # (stage, analysis name or None)
COUNTS = ("items_in", "items_out", "frames_in", "frames_out", "bytes")
SECONDS = ("busy_s", "idle_s", "blocked_s")


class StageSink(Protocol):
    """Receives each closed interval's rows and each call's measured seconds
    (Ray's metrics exporter)."""

    def publish(self, rows: list[dict[str, Any]]) -> None: ...

    def call(self, stage: str, analysis: str | None, seconds: float) -> None: ...


@dataclass
class _Tally:
    """One stage's counts in the open interval."""

    items_in: int = 0
    items_out: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bytes: int = 0
    busy_s: float = 0.0
    idle_s: float | None = None  # None: not measured for this stage
    blocked_s: float | None = None
    queue: list[int] = field(default_factory=list)
    buffer_bytes: int | None = None
    gpu_util: list[float] = field(default_factory=list)
    gpu_memory: int | None = None


@dataclass
class WaitTotals:
    """The steady state, after every model has loaded (start-up is not the
    steady state's bottleneck): seconds of that window; decode held back by a
    full buffer, starved of planned units, and its slot-seconds; per model
    pool's analysis the actor-seconds loaded; and the busy seconds the workers
    measured, by stage, in calls that finished in the window."""

    window_s: float = 0.0
    decode_blocked_s: float = 0.0
    decode_starved_s: float = 0.0
    decode_slot_s: float = 0.0
    pool_ready_s: dict[str, float] = field(default_factory=dict)
    busy_s: dict[StageKey, float] = field(default_factory=dict)


class StageMeter:
    """Collects a run's stage metrics; `rows` holds the closed intervals."""

    def __init__(self, run_id: str, *, interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 sinks: Sequence[StageSink] = ()) -> None:
        self.run_id = run_id
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self.clock = clock
        self.sinks = list(sinks)
        self.started = clock()
        self._started_at = now()
        self._opened = self.started
        self._tallies: dict[StageKey, _Tally] = {}
        self._workers: dict[StageKey, int] = {}
        self._sampled = -math.inf
        self.rows: list[dict[str, Any]] = []
        self.waits = WaitTotals()
        self.mode = "pipelined"  # or "in-actor", "sequential": how stages overlap
        self.cpus = 0.0  # what the run held (cost figures)
        self.gpus = 0.0
        self.models: frozenset[str] = frozenset()  # analyses that run a model
        self.steady = False  # every model has loaded (set by `waited`)
        self.closed = False

    # -- what happens ---------------------------------------------------------
    def workers(self, stage: str, count: int, analysis: str | None = None) -> None:
        """The processes that do `stage`'s work now (decode slots, a pool's actors)."""
        self._workers[(stage, analysis)] = max(int(count), 0)
        self._tally(stage, analysis)

    def add(self, stage: str, analysis: str | None = None, **counts: float) -> None:
        """Add `counts` (items_in, items_out, frames_in, frames_out, bytes, busy_s,
        idle_s, blocked_s) to `stage`'s open interval; negative or non-finite
        values are refused (a bug, not data)."""
        tally = self._tally(stage, analysis)
        for name, value in counts.items():
            if name not in COUNTS and name not in SECONDS:
                raise KeyError(f"unknown stage count {name!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"stage {stage}: {name} = {value!r}")
            old = getattr(tally, name)
            setattr(tally, name, (old or 0) + (int(value) if name in COUNTS else float(value)))

    def add_times(self, times: WorkTimes) -> None:
        """A worker's measured seconds (and bytes fetched) of one call, by stage."""
        spent: list[tuple[str, str | None, float]] = [
            ("probe", None, times.probe_s), ("fetch", None, times.fetch_s),
            ("decode", None, times.decode_s),
            *(("analysis", name, s) for name, s in times.analyses_s.items())]
        for stage, analysis, seconds in spent:
            if seconds > 0:
                self.add(stage, analysis, busy_s=seconds)
                if self.steady:
                    busy = self.waits.busy_s
                    busy[(stage, analysis)] = busy.get((stage, analysis), 0.0) + seconds
                for sink in self.sinks:
                    sink.call(stage, analysis, seconds)
        if times.fetch_bytes:
            self.add("fetch", bytes=times.fetch_bytes)
        if times.gpu is not None:
            for name in times.analyses_s:
                self.gpu(name, times.gpu)

    def waited(self, seconds: float, *, steady: bool, decode_blocked: bool = False,
               decode_idle_slots: int = 0, decode_starved: bool = False,
               pools: dict[str, tuple[int, int]] | None = None) -> None:
        """`seconds` of the driver's loop in one state: decode held back by a
        full buffer (`decode_blocked`), `decode_idle_slots` free with nothing
        planned to decode (`decode_starved`: while planning goes on), and per
        model-pool analysis (loaded actors, actors with no call). `steady`:
        every model has loaded (only then do waits count towards the verdict)."""
        self.steady = steady
        if not math.isfinite(seconds) or seconds <= 0:
            return
        if decode_blocked:
            self.add("decode", blocked_s=seconds)
        if decode_idle_slots:
            self.add("decode", idle_s=seconds * decode_idle_slots)
        for name, (_, idle) in (pools or {}).items():
            self.add("analysis", name, idle_s=seconds * idle)
        if not steady:
            return
        waits = self.waits
        waits.window_s += seconds
        waits.decode_blocked_s += seconds * decode_blocked
        waits.decode_starved_s += seconds * decode_starved
        waits.decode_slot_s += seconds * self._workers.get(("decode", None), 0)
        for name, (ready, _) in (pools or {}).items():
            waits.pool_ready_s[name] = waits.pool_ready_s.get(name, 0.0) + seconds * ready

    def gpu(self, analysis: str, reading: GpuReading) -> None:
        tally = self._tally("analysis", analysis)
        if reading.utilisation is not None and 0 <= reading.utilisation <= 1:
            tally.gpu_util.append(reading.utilisation)
        if reading.memory_bytes >= 0:
            tally.gpu_memory = max(tally.gpu_memory or 0, reading.memory_bytes)

    def sample(self, depths: dict[StageKey, int], buffer_bytes: int | None = None) -> None:
        """Queue depths (items waiting for each stage) and the bytes of decoded
        frames held for the models, at most every SAMPLE_EVERY_S seconds."""
        now = self.clock()
        if now - self._sampled < SAMPLE_EVERY_S:
            return
        self._sampled = now
        for (stage, analysis), depth in depths.items():
            self._tally(stage, analysis).queue.append(max(int(depth), 0))
        if buffer_bytes is not None:
            tally = self._tally("decode", None)
            tally.buffer_bytes = max(tally.buffer_bytes or 0, int(buffer_bytes))

    # -- intervals --------------------------------------------------------------
    def tick(self) -> None:
        """Close the open interval if it has lasted `interval_s`."""
        if self.clock() - self._opened >= self.interval_s:
            self._close_interval()

    def close(self) -> list[dict[str, Any]]:
        """Close the last (partial) interval; the run's rows."""
        if not self.closed:
            self._close_interval(last=True)
            self.closed = True
        return self.rows

    @property
    def elapsed_s(self) -> float:
        return max(self.clock() - self.started, 0.0)

    def _tally(self, stage: str, analysis: str | None) -> _Tally:
        if stage not in STAGES:
            raise KeyError(f"unknown stage {stage!r}")
        return self._tallies.setdefault((stage, analysis), _Tally())

    def _close_interval(self, last: bool = False) -> None:
        now = self.clock()
        length = max(now - self._opened, 0.0)
        start = self._started_at + timedelta(seconds=self._opened - self.started)
        rows = [self._row(key, tally, start, length)
                for key, tally in sorted(self._tallies.items(), key=_stage_order)]
        self._tallies = {key: _Tally() for key in self._tallies}
        self._opened = now
        for sink in self.sinks:
            sink.publish(rows)
        if last and self.rows and length < FOLD_BELOW * self.interval_s:
            rows = self._fold(rows)  # a sliver of an interval would chart as a spike
        self.rows.extend(rows)

    def _fold(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add a short last interval's rows to the interval before; returns the
        rows of stages that interval did not have."""
        previous = {(r["stage"], r["analysis"]): r for r in self.rows
                    if r["interval_start"] == self.rows[-1]["interval_start"]}
        alone = []
        for row in rows:
            before = previous.get((row["stage"], row["analysis"]))
            if before is None:
                alone.append(row)
                continue
            for name in (*COUNTS, *SECONDS, "interval_s"):
                if row[name] is not None:
                    before[name] = (before[name] or 0) + row[name]
            for name in ("queue_max", "buffer_bytes", "gpu_memory_bytes"):
                if row[name] is not None:
                    before[name] = max(before[name] or 0, row[name])
            length, capacity = before["interval_s"], (before["workers"] or 0) * before["interval_s"]
            before["frames_per_s"] = before["frames_out"] / length if length > 0 else 0.0
            before["utilisation"] = (min(before["busy_s"] / capacity, 1.0) if capacity > 0
                                     else None)
        return alone

    def _row(self, key: StageKey, tally: _Tally, start: datetime,
             length: float) -> dict[str, Any]:
        stage, analysis = key
        workers = self._workers.get(key)
        capacity = (workers or 0) * length
        queue = np.asarray(tally.queue or [0], np.int64)
        return {
            "run_id": self.run_id, "stage": stage, "analysis": analysis,
            "interval_start": start, "interval_s": length, "workers": workers,
            "items_in": tally.items_in, "items_out": tally.items_out,
            "frames_in": tally.frames_in, "frames_out": tally.frames_out,
            "busy_s": tally.busy_s, "idle_s": tally.idle_s, "blocked_s": tally.blocked_s,
            "frames_per_s": tally.frames_out / length if length > 0 else 0.0,
            "bytes": tally.bytes,
            "queue_p50": int(np.percentile(queue, 50, method="lower")),
            "queue_p95": int(np.percentile(queue, 95, method="lower")),
            "queue_max": int(queue.max()),
            "buffer_bytes": tally.buffer_bytes,
            "utilisation": min(tally.busy_s / capacity, 1.0) if capacity > 0 else None,
            "gpu_utilisation": (float(np.mean(tally.gpu_util)) if tally.gpu_util else None),
            "gpu_memory_bytes": tally.gpu_memory,
        }


def _stage_order(item: tuple[StageKey, Any]) -> tuple[int, str]:
    (stage, analysis), _ = item
    return STAGES.index(stage), analysis or ""
