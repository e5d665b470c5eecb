"""A run's stage totals (summed `run_stages` rows) and what the run cost."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.observe.stage_meter import SECONDS, STAGES


@dataclass(frozen=True)
class StageTotal:
    """One stage's (or analysis's) sums over a run; `workers` is the most it
    had, `utilisation` its busy share of workers × the run's wall time."""

    stage: str
    analysis: str | None
    workers: int | None
    items_in: int
    items_out: int
    frames_in: int
    frames_out: int
    busy_s: float
    idle_s: float | None
    blocked_s: float | None
    bytes: int
    utilisation: float | None

    def record(self) -> dict[str, Any]:
        return dict(vars(self))


def stage_totals(rows: Iterable[dict[str, Any]], wall_s: float) -> list[StageTotal]:
    """Sum `run_stages` rows per (stage, analysis), in stage order."""
    sums: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows:
        key = (row["stage"], row["analysis"])
        total = sums.setdefault(key, {"workers": None, "items_in": 0, "items_out": 0,
                                      "frames_in": 0, "frames_out": 0, "bytes": 0,
                                      "busy_s": 0.0, "idle_s": None, "blocked_s": None})
        if row["workers"] is not None:
            total["workers"] = max(total["workers"] or 0, row["workers"])
        for name in ("items_in", "items_out", "frames_in", "frames_out", "bytes"):
            total[name] += row[name]
        total["busy_s"] += row["busy_s"]
        for name in SECONDS[1:]:
            if row[name] is not None:
                total[name] = (total[name] or 0.0) + row[name]
    ordered = sorted(sums.items(), key=lambda kv: (STAGES.index(kv[0][0]), kv[0][1] or ""))
    return [StageTotal(stage, analysis, **t,
                       utilisation=_utilisation(t["busy_s"], t["workers"], wall_s))
            for (stage, analysis), t in ordered]


def _utilisation(busy_s: float, workers: int | None, wall_s: float) -> float | None:
    capacity = (workers or 0) * wall_s
    return min(busy_s / capacity, 1.0) if capacity > 0 else None


@dataclass(frozen=True)
class RunCost:
    """Video-hours a run processed against the CPU- and GPU-hours it held
    (the cluster's CPUs and GPUs × wall time: what a cluster billed by the hour
    costs, whether or not a core was busy)."""

    video_hours: float
    cpu_hours: float
    gpu_hours: float

    @property
    def video_hours_per_cpu_hour(self) -> float | None:
        return self.video_hours / self.cpu_hours if self.cpu_hours > 0 else None

    @property
    def video_hours_per_gpu_hour(self) -> float | None:
        return self.video_hours / self.gpu_hours if self.gpu_hours > 0 else None

    def line(self) -> str:
        """`cost: 0.52 video-hours on 0.004 CPU-hours = 130.0 video-hours per CPU-hour`."""
        text = (f"cost: {self.video_hours:.3g} video-hours on {self.cpu_hours:.3g} CPU-hours"
                f" = {self.video_hours_per_cpu_hour or 0:.3g} video-hours per CPU-hour")
        if self.video_hours_per_gpu_hour is not None:
            text += f", {self.video_hours_per_gpu_hour:.3g} per GPU-hour"
        return text


def run_cost(video_s: float, wall_s: float, cpus: float, gpus: float) -> RunCost:
    """The cost figures of a run that processed `video_s` seconds of video in
    `wall_s` seconds holding `cpus` and `gpus` (non-finite or negative: 0)."""
    def hours(seconds: float) -> float:
        return seconds / 3600 if math.isfinite(seconds) and seconds > 0 else 0.0

    return RunCost(hours(video_s), hours(wall_s * cpus), hours(wall_s * gpus))
