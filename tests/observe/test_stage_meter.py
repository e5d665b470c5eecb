"""StageMeter: intervals, sums, waits and sinks, on a fake clock."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from pipeline.lake.schemas import RUN_STAGES
from pipeline.observe.run_totals import run_cost, stage_totals
from pipeline.observe.stage_meter import StageMeter
from pipeline.observe.work_times import GpuReading, WorkTimes

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Sink:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str | None, float]] = []

    def publish(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    def call(self, stage: str, analysis: str | None, seconds: float) -> None:
        self.calls.append((stage, analysis, seconds))


def meter(clock: Clock, sink: Sink | None = None) -> StageMeter:
    return StageMeter("r1", interval_s=5.0, clock=clock, now=lambda: START,
                      sinks=[sink] if sink else [])


def by_stage(rows: list[dict[str, Any]], stage: str, analysis: str | None = None) -> list[dict]:
    return [r for r in rows if r["stage"] == stage and r["analysis"] == analysis]


def test_intervals_close_every_interval_and_sum_to_what_was_added():
    clock = Clock()
    m = meter(clock)
    m.workers("decode", 2)
    m.add("decode", items_in=4, frames_in=32)
    clock.t += 3
    m.tick()  # not yet due
    assert m.rows == []
    m.add("decode", items_out=3, frames_out=24, busy_s=4.0)
    clock.t += 2.5
    m.tick()
    m.add("decode", items_out=1, frames_out=8, busy_s=1.0)
    clock.t += 1
    rows = m.close()
    decode = by_stage(rows, "decode")
    assert [r["interval_s"] for r in decode] == [5.5, 1.0]
    assert [r["interval_start"] for r in decode] == [START, START + timedelta(seconds=5.5)]
    assert sum(r["frames_out"] for r in decode) == 32 and sum(r["items_in"] for r in decode) == 4
    assert decode[0]["utilisation"] == pytest.approx(4.0 / (2 * 5.5))
    assert decode[0]["frames_per_s"] == pytest.approx(24 / 5.5)
    assert decode[1]["utilisation"] == pytest.approx(0.5)
    pa.Table.from_pylist(rows, schema=RUN_STAGES)  # every row fits the table's schema
    assert m.close() is rows  # closing twice adds nothing


def test_utilisation_is_capped_at_one_when_a_long_call_lands_in_a_short_interval():
    clock = Clock()
    m = meter(clock)
    m.workers("analysis", 1, "frame_labels")
    m.add("analysis", "frame_labels", busy_s=9.0)
    clock.t += 5
    (row,) = m.close()
    assert row["busy_s"] == 9.0 and row["utilisation"] == 1.0


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_bad_numbers_and_unknown_names_are_refused(value: float):
    m = meter(Clock())
    with pytest.raises(ValueError):
        m.add("decode", busy_s=value)
    with pytest.raises(KeyError):
        m.add("decode", seconds=1.0)
    with pytest.raises(KeyError):
        m.add("inference", busy_s=1.0)


def test_queue_depths_give_percentiles_and_the_buffer_its_peak():
    clock = Clock()
    m = meter(clock)
    for depth in range(1, 21):  # 1..20, sampled 0.25 s apart
        clock.t += 0.25
        m.sample({("decode", None): depth}, buffer_bytes=depth * 100)
    m.sample({("decode", None): 99})  # too soon after the last sample: ignored
    (row,) = m.close()
    assert (row["queue_p50"], row["queue_p95"], row["queue_max"]) == (10, 19, 20)
    assert row["buffer_bytes"] == 2000


def test_worker_times_go_to_their_stages_and_to_the_sinks():
    clock, sink = Clock(), Sink()
    m = meter(clock, sink)
    times = WorkTimes(fetch_s=0.5, fetch_bytes=1000, decode_s=1.5,
                      analyses_s={"frame_labels": 2.0},
                      gpu=GpuReading(utilisation=0.75, memory_bytes=5 << 20))
    m.add_times(times)
    m.add_times(WorkTimes(analyses_s={"frame_labels": 1.0},
                          gpu=GpuReading(utilisation=0.25, memory_bytes=3 << 20)))
    clock.t += 5
    rows = m.close()
    (fetch,) = by_stage(rows, "fetch")
    assert fetch["busy_s"] == 0.5 and fetch["bytes"] == 1000
    (model,) = by_stage(rows, "analysis", "frame_labels")
    assert model["busy_s"] == 3.0
    assert model["gpu_utilisation"] == pytest.approx(0.5)
    assert model["gpu_memory_bytes"] == 5 << 20
    assert sink.rows == rows
    assert ("decode", None, 1.5) in sink.calls and ("analysis", "frame_labels", 1.0) in sink.calls


def test_waits_count_towards_the_verdict_only_once_models_have_loaded():
    m = meter(Clock())
    m.workers("decode", 2)
    m.waited(2.0, steady=False, decode_blocked=True, pools={"frame_labels": (0, 0)})
    m.add_times(WorkTimes(decode_s=5.0, analyses_s={"frame_labels": 7.0}))  # before: not counted
    m.waited(3.0, steady=True, decode_blocked=True, decode_idle_slots=0,
              pools={"frame_labels": (2, 1)})
    m.add_times(WorkTimes(decode_s=1.5, analyses_s={"frame_labels": 2.5}))
    m.waited(1.0, steady=True, decode_idle_slots=2, decode_starved=True,
             pools={"frame_labels": (2, 2)})
    waits = m.waits
    assert waits.window_s == 4.0 and waits.decode_slot_s == 8.0
    assert waits.decode_blocked_s == 3.0 and waits.decode_starved_s == 1.0
    assert waits.pool_ready_s == {"frame_labels": 8.0}
    assert waits.busy_s == {("decode", None): 1.5, ("analysis", "frame_labels"): 2.5}
    rows = m.close()
    (decode,) = by_stage(rows, "decode")
    assert decode["blocked_s"] == 5.0 and decode["idle_s"] == 2.0
    (model,) = by_stage(rows, "analysis", "frame_labels")
    assert model["idle_s"] == 5.0


def test_stage_totals_sum_rows_in_stage_order():
    clock = Clock()
    m = meter(clock)
    m.workers("decode", 2)
    m.add("commit", items_out=3)
    m.add("decode", frames_out=10, busy_s=2.0)
    m.add("list", items_out=5)
    clock.t += 5
    m.tick()
    m.add("decode", frames_out=6, busy_s=3.0, blocked_s=1.0)
    clock.t += 5
    totals = stage_totals(m.close(), wall_s=10.0)
    assert [(t.stage, t.analysis) for t in totals] == [("list", None), ("decode", None),
                                                       ("commit", None)]
    decode = totals[1]
    assert (decode.frames_out, decode.busy_s, decode.blocked_s) == (16, 5.0, 1.0)
    assert decode.utilisation == pytest.approx(5.0 / 20.0)
    assert totals[0].utilisation is None  # no workers declared


def test_cost_figures():
    cost = run_cost(video_s=7200.0, wall_s=360.0, cpus=10.0, gpus=0.0)
    assert cost.video_hours == 2.0 and cost.cpu_hours == 1.0 and cost.gpu_hours == 0.0
    assert cost.video_hours_per_cpu_hour == 2.0 and cost.video_hours_per_gpu_hour is None
    assert "2 video-hours per CPU-hour" in cost.line()
    gpu = run_cost(video_s=3600.0, wall_s=3600.0, cpus=8.0, gpus=2.0)
    assert gpu.video_hours_per_gpu_hour == 0.5
    assert run_cost(math.nan, -1.0, 4.0, 1.0).video_hours == 0.0


def test_a_sliver_of_a_last_interval_joins_the_one_before():
    clock = Clock()
    m = meter(clock)
    m.workers("decode", 1)
    m.add("decode", frames_out=50, busy_s=4.0)
    clock.t += 5
    m.tick()
    m.add("decode", frames_out=10, busy_s=0.5)
    m.add("commit", items_out=2)  # a stage the interval before did not have
    clock.t += 0.5
    rows = m.close()
    (decode,) = by_stage(rows, "decode")
    assert (decode["interval_s"], decode["frames_out"], decode["busy_s"]) == (5.5, 60, 4.5)
    assert decode["frames_per_s"] == pytest.approx(60 / 5.5)
    assert decode["utilisation"] == pytest.approx(4.5 / 5.5)
    (commit,) = by_stage(rows, "commit")
    assert commit["interval_s"] == 0.5 and commit["items_out"] == 2


def test_a_commit_waiting_for_models_to_load_is_not_commit_time():
    from types import SimpleNamespace

    from pipeline.observe.work_times import Stopwatch
    from pipeline.runner.label_run import _metered_commit

    m, loading = meter(Clock()), Stopwatch()
    committer = SimpleNamespace(counts=SimpleNamespace(units=0, frames=0))

    def add() -> None:
        with loading:  # the first flush asks for the loaded models' names
            time.sleep(0.3)  # stands in for actors still importing torch
        committer.counts.units, committer.counts.frames = 2, 16

    _metered_commit(m, committer, add, loading, units=2, frames=16)  # type: ignore[arg-type]
    (row,) = m.close()
    assert loading.total >= 0.3
    assert row["busy_s"] < 0.1 and (row["items_out"], row["frames_out"]) == (2, 16)
