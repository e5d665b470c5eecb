"""The Ray run's scheduling policy, with plain values and no Ray: actor pools,
task groups from lazy plans, backpressure accounting, fault isolation,
deadlines and batching."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import pytest

from pipeline.config import ExecutionSpec
from pipeline.corpus.video_ref import VideoRef
from pipeline.plan.work_unit import AnalysisWork, WorkUnit
from pipeline.runner.scheduling import (
    Call,
    Deadlines,
    ModelNeeds,
    PayloadLedger,
    Retries,
    UnitFeed,
    plan_pools,
    pool_frames,
    running_calls,
    take_batch,
)

VIDEO = VideoRef("file:///v.mp4", 100, "mtime:1")


def _unit(index: int, frames: int = 4, analyses: tuple[str, ...] = ("labels",)) -> WorkUnit:
    indices = tuple(range(index * 100, index * 100 + frames))
    work = tuple(AnalysisWork(name, frames=indices) for name in analyses)
    return WorkUnit(unit_id=f"u{index}", video=VIDEO, unit_index=index, frame_indices=indices,
                    fps=25.0, work=work)


def test_one_pool_per_model_sharing_gpus_and_reserving_no_cpu_without_them():
    models = [ModelNeeds("labels"), ModelNeeds("boxes", actors=3, batch=4)]
    on_cpu = plan_pools(models, ExecutionSpec(), cpus=8, gpus=0)
    assert [(p.names, p.n_actors, p.batch_frames) for p in on_cpu] == [
        (["labels"], 1, 64), (["boxes"], 3, 4)]
    assert all(p.options == {"num_gpus": 0, "num_cpus": 0} for p in on_cpu)
    on_gpu = plan_pools(models, ExecutionSpec(), cpus=8, gpus=2)
    assert on_gpu[0].n_actors == 2 and on_gpu[0].options == {"num_gpus": 0.5, "num_cpus": 1}
    assert plan_pools([], ExecutionSpec(), cpus=8, gpus=0) == []


def test_in_actor_is_one_pool_holding_every_model():
    (pool,) = plan_pools([ModelNeeds("labels"), ModelNeeds("boxes")],
                         ExecutionSpec(decode="in-actor"), cpus=4, gpus=0)
    assert pool.names == ["labels", "boxes"] and pool.n_actors == 4
    assert pool.options == {"num_cpus": 1}


def test_pool_frames_count_only_what_the_pool_reads():
    units = [_unit(0, 4, ("labels", "boxes")), _unit(1, 2, ("labels",))]
    assert pool_frames(units, ["labels"]) == 6
    assert pool_frames(units, ["boxes"]) == 4


def _counting_plan(units: list[WorkUnit], pulled: list[int]) -> Iterator[WorkUnit]:
    for unit in units:
        pulled.append(unit.unit_index)
        yield unit


def test_the_feed_groups_units_by_frames_and_pulls_no_further_than_asked():
    pulled: list[int] = []
    feed = UnitFeed(task_frames=8)
    feed.add(_counting_plan([_unit(i) for i in range(10)], pulled))
    todo: deque[list[WorkUnit]] = deque()
    feed.refill(todo, target=2)
    assert [[u.unit_index for u in g] for g in todo] == [[0, 1], [2, 3]]
    assert pulled == [0, 1, 2, 3, 4]  # unit 4 is carried into the next group, not lost
    feed.refill(todo, target=10)
    assert [u.unit_index for g in todo for u in g] == list(range(10))
    assert not feed.pending


def test_a_unit_bigger_than_a_task_is_a_task_alone():
    feed = UnitFeed(task_frames=8)
    feed.add(iter([_unit(0, 20), _unit(1, 2)]))
    assert [u.unit_index for u in feed.next_group()] == [0]
    assert [u.unit_index for u in feed.next_group()] == [1]
    assert feed.next_group() == []


def test_payloads_are_forgotten_when_every_pool_is_done():
    ledger = PayloadLedger()
    ledger.hold("a", frames=10, pools=2)
    ledger.hold("b", frames=5, pools=1)
    assert ledger.frames == 15
    ledger.release("a")
    assert ledger.frames == 15
    ledger.share("b")  # the call's units were split into two queue items
    ledger.release("a")
    ledger.release("b")
    assert ledger.frames == 5
    ledger.release("b")
    ledger.release("unknown")
    assert ledger.frames == 0


def test_failures_are_isolated_then_retried_after_a_crash_and_given_up_after_a_hang():
    retries = Retries(max_attempts=2)
    units = [_unit(0), _unit(1)]
    again, failed = retries.after_failure(units, hung=False)
    assert [[u.unit_id for u in g] for g in again] == [["u0"], ["u1"]] and failed is None
    assert retries.after_failure([units[0]], hung=False) == ([[units[0]]], None)
    assert retries.after_failure([units[0]], hung=False) == ([], units[0])
    assert retries.after_failure([units[1]], hung=True) == ([], units[1])


def test_deadlines():
    deadlines = Deadlines(unit_timeout_s=10, inference_timeout_s=600)
    assert deadlines.decode(100.0, n_units=3) == 140.0
    assert deadlines.inference(100.0) == 700.0


def test_only_each_loaded_actors_oldest_call_is_running():
    first, second, loading = object(), object(), object()
    calls = {"r1": Call([], 0, handle=first), "r2": Call([], 0, handle=first),
             "r3": Call([], 0, handle=second), "r4": Call([], 0, handle=loading)}
    assert running_calls(calls, lambda c: c.handle is not loading) == {"r1", "r3"}


@pytest.mark.parametrize(("flushing", "expected"), [(False, []), (True, [["u0"], ["u1"]])])
def test_a_pool_waits_for_a_full_batch_unless_flushing(flushing: bool, expected: list):
    queue = deque([("p0", [_unit(0)], 4), ("p1", [_unit(1)], 4)])
    parts = take_batch(queue, batch_frames=16, flushing=flushing)
    assert [[u.unit_id for u in units] for _, units in parts] == expected


def test_a_batch_takes_parts_until_it_has_enough_frames():
    queue = deque([(f"p{i}", [_unit(i)], 4) for i in range(5)])
    parts = take_batch(queue, batch_frames=8, flushing=False)
    assert [payload for payload, _ in parts] == ["p0", "p1"]
    assert len(queue) == 3
