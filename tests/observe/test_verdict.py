"""The bottleneck verdict from measured busy and wait times."""

from __future__ import annotations

from pipeline.observe.run_totals import StageTotal
from pipeline.observe.stage_meter import WaitTotals
from pipeline.observe.verdict import bottleneck


def total(stage: str, busy_s: float, analysis: str | None = None) -> StageTotal:
    return StageTotal(stage, analysis, 1, 0, 0, 0, 0, busy_s, None, None, 0, None)


WORK = [total("fetch", 1.0), total("decode", 10.0), total("analysis", 5.0, "frame_labels"),
        total("commit", 0.5)]


def waits(idle: float, blocked: float = 0.0, starved: float = 0.0,
          decode_use: float = 0.5) -> WaitTotals:
    """A 100 s steady window with 2 actors and 2 decode slots; `idle` (the
    actors' share not measured busy) etc. as shares of it."""
    return WaitTotals(window_s=100.0, decode_blocked_s=100 * blocked,
                      decode_starved_s=100 * starved, decode_slot_s=200.0,
                      pool_ready_s={"frame_labels": 200.0},
                      busy_s={("analysis", "frame_labels"): 200.0 * (1 - idle),
                              ("decode", None): 200.0 * decode_use})


def test_models_waiting_for_frames_is_decode_bound():
    line = bottleneck(WORK, waits(idle=0.63, decode_use=0.97), "pipelined", 120.0)
    assert line.startswith("decode-bound: model actors idle 63% of the time (decode workers "
                           "busy 97%)")
    assert "--decode-workers" in line


def test_decode_held_back_by_a_full_buffer_is_model_bound():
    line = bottleneck(WORK, waits(idle=0.05, blocked=0.7), "pipelined", 120.0)
    assert line.startswith("model-bound (frame_labels): model actors busy 95% of the time, "
                           "decode held back by a full frame buffer 70%")
    # a buffer big enough not to fill yet: busy models are still the limit
    assert bottleneck(WORK, waits(idle=0.1, blocked=0.0, decode_use=0.3), "pipelined",
                      120.0).startswith("model-bound (frame_labels): model actors busy 90%")


def test_both_near_capacity_is_balanced():
    assert bottleneck(WORK, waits(idle=0.1, blocked=0.1, decode_use=0.9), "pipelined",
                      120.0).startswith("balanced: model actors busy 90%, decode workers "
                                        "busy 90%")


def test_decode_starved_of_probed_videos_is_probe_bound():
    assert bottleneck(WORK, waits(idle=0.5, starved=0.4), "pipelined", 120.0).startswith(
        "probe-bound: model actors idle 50% of the time, decode workers waiting for probed "
        "videos 40%")


def test_more_fetching_than_decoding_is_fetch_bound():
    work = [total("fetch", 30.0), total("decode", 10.0), total("analysis", 5.0, "frame_labels")]
    assert bottleneck(work, waits(idle=0.5), "pipelined", 120.0).startswith("fetch-bound")


def test_the_busiest_pool_decides_between_several():
    w = waits(idle=0.05, blocked=0.5)
    w.pool_ready_s["clip_labels"] = 100.0
    w.busy_s[("analysis", "clip_labels")] = 10.0
    assert "model-bound (frame_labels)" in bottleneck(WORK, w, "pipelined", 120.0)
    w.busy_s[("analysis", "clip_labels")] = 100.0  # busier still: it is the limit
    assert "model-bound (clip_labels): model actors busy 100%" in bottleneck(
        WORK, w, "pipelined", 120.0)


def test_shared_processes_name_the_stage_with_most_busy_time():
    models = frozenset({"frame_labels"})
    line = bottleneck(WORK, WaitTotals(), "sequential", 20.0, models)
    assert line.startswith("decode-bound: 62% of the work time went to decode")
    heavy = [total("decode", 1.0), total("analysis", 9.0, "frame_labels")]
    assert bottleneck(heavy, WaitTotals(), "in-actor", 20.0, models).startswith(
        "model-bound (frame_labels): 90% of the work time")
    shots = [total("decode", 1.0), total("analysis", 9.0, "shots")]
    assert bottleneck(shots, WaitTotals(), "sequential", 20.0, models).startswith(
        "analysis-bound (shots)")


def test_models_ready_only_at_the_end_is_start_up_bound():
    assert bottleneck(WORK, waits(idle=0.05), "pipelined", 400.0).startswith(
        "start-up-bound: the model actors were ready for 100s of the 400s run")


def test_a_slow_lake_is_commit_bound_and_an_empty_run_says_so():
    slow = [*WORK[:3], total("commit", 50.0)]
    assert bottleneck(slow, waits(idle=0.9), "pipelined", 100.0).startswith(
        "commit-bound: the driver spent 50% of the run writing the lake")
    assert bottleneck([], WaitTotals(), "pipelined", 1.0).startswith("nothing measured")
