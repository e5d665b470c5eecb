"""Stage metrics on Ray's metrics endpoint (`ray.util.metrics`), live.

Each closed interval of the StageMeter adds to counters and sets gauges,
and each call's measured seconds go to a histogram, all tagged by run,
stage and analysis. Ray's metrics agent on the driver's node serves them to
Prometheus with a `ray_` prefix (`ray_vidlake_stage_frames_total`...), where
the Ray dashboard and infra/grafana/vidlake-dashboard.json chart them. Tags
carry names only (run id, stage, analysis): nothing from the configuration.
"""

from __future__ import annotations

import functools
import math
from typing import Any

TAGS = ("run", "stage", "analysis")
CALL_SECONDS_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]
# run_stages column -> (metric name, description); counters add up, gauges are the latest
COUNTERS = {
    "items_out": ("vidlake_stage_items", "items (videos or units) a stage finished"),
    "frames_out": ("vidlake_stage_frames", "frames a stage finished"),
    "busy_s": ("vidlake_stage_busy_seconds", "worker-seconds a stage spent working"),
    "bytes": ("vidlake_stage_bytes", "bytes a stage read from storage (fetch)"),
}
GAUGES = {
    "workers": ("vidlake_stage_workers", "processes doing a stage's work"),
    "utilisation": ("vidlake_stage_utilisation", "busy share of the stage's workers, 0-1"),
    "queue_max": ("vidlake_stage_queue_depth", "most items waiting for the stage"),
    "buffer_bytes": ("vidlake_buffer_bytes", "decoded frames held for the model actors"),
    "frames_per_s": ("vidlake_stage_frames_per_second", "frames finished per second"),
    "gpu_utilisation": ("vidlake_stage_gpu_utilisation", "GPU busy share of model actors, 0-1"),
    "gpu_memory_bytes": ("vidlake_stage_gpu_memory_bytes", "peak GPU memory of model actors"),
}


class _Metrics:
    """The metric objects, made once per process (every run's sink shares them:
    Ray keeps one series per name and tag values)."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        self.counters = {column: Counter(name, description=text, tag_keys=TAGS)
                         for column, (name, text) in COUNTERS.items()}
        self.gauges = {column: Gauge(name, description=text, tag_keys=TAGS)
                       for column, (name, text) in GAUGES.items()}
        self.calls = Histogram("vidlake_call_seconds",
                               description="seconds one worker call spent in a stage",
                               boundaries=CALL_SECONDS_BOUNDARIES, tag_keys=TAGS)


@functools.cache
def _metrics() -> _Metrics:
    return _Metrics()


class RayMetricsSink:
    """Exports a run's stage rows through `ray.util.metrics` (the driver must
    be connected to Ray)."""

    def __init__(self, run_id: str) -> None:
        metrics = _metrics()
        self.counters, self.gauges, self.calls = metrics.counters, metrics.gauges, metrics.calls
        self.run_id = run_id

    def tags(self, stage: str, analysis: str | None) -> dict[str, str]:
        return {"run": self.run_id, "stage": stage, "analysis": analysis or ""}

    def publish(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            tags = self.tags(row["stage"], row["analysis"])
            for column, counter in self.counters.items():
                if row[column] and _usable(row[column]):
                    counter.inc(row[column], tags=tags)
            for column, gauge in self.gauges.items():
                if row[column] is not None and _usable(row[column]):
                    gauge.set(row[column], tags=tags)

    def call(self, stage: str, analysis: str | None, seconds: float) -> None:
        if _usable(seconds):
            self.calls.observe(seconds, tags=self.tags(stage, analysis))


def _usable(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0
