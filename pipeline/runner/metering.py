"""What the engines tell the StageMeter: decode calls and analyses (both
engines), and the Ray scheduler's workers and waits, once per turn of its loop."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pipeline.observe.stage_meter import StageKey, StageMeter
from pipeline.observe.work_times import WorkTimes
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import DecodeReport
from pipeline.runner.scheduling import pool_frames

if TYPE_CHECKING:
    from pipeline.runner.ray_engine import _Scheduler


def count_analyses(meter: StageMeter, names: list[str], units: list[WorkUnit], way: str) -> None:
    """Units (and the frames they read) with work for each analysis of `names`,
    going in (`way` "in") or out ("out")."""
    for name in names:
        mine = [u for u in units if u.work_for(name) is not None]
        if mine:
            meter.add("analysis", name, **{f"items_{way}": len(mine),
                                           f"frames_{way}": pool_frames(mine, [name])})


def count_decoded(meter: StageMeter, reports: list[DecodeReport], times: WorkTimes,
                  on_decoder: list[str]) -> None:
    """A decode call's measured seconds, its units and frames out, and the
    units of the model-free analyses (`on_decoder`) that ran next to it."""
    meter.add_times(times)
    meter.add("decode", items_out=len(reports), frames_out=sum(r.outcome.frames for r in reports))
    ok = [r.unit for r in reports if r.outcome.status == "ok"]
    count_analyses(meter, on_decoder, ok, "in")
    count_analyses(meter, on_decoder, ok, "out")


def count_submitted(meter: StageMeter, units: list[WorkUnit]) -> None:
    """Units handed to decode, and the frames they will read."""
    meter.add("decode", items_in=len(units), frames_in=sum(len(u.frame_indices) for u in units))


def describe_workers(s: _Scheduler) -> None:
    """Tell the meter what the Ray run `s` holds (cost figures) and who does each
    stage; again whenever its decode slots change."""
    import ray  # here: the sequential engine uses this module without Ray

    meter = s.meter
    meter.mode = "in-actor" if s.in_actor else "pipelined"
    resources = ray.cluster_resources()  # the most a run held (an autoscaler adds nodes)
    meter.cpus = max(meter.cpus, float(s.e.cpus), float(resources.get("CPU", 0)))
    meter.gpus = max(meter.gpus, float(s.e.gpus), float(resources.get("GPU", 0)))
    meter.models = frozenset(a.name for a in s.e.models)
    meter.workers("list", 1)
    meter.workers("probe", s.max_probing)
    decoders = len(s.pools[0].actors) if s.in_actor else s.decode_slots
    for stage in ("fetch", "decode"):
        meter.workers(stage, decoders)
    for analysis in s.e.on_decoder:
        meter.workers("analysis", decoders, analysis.name)
    for pool in s.pools:
        for name in pool.names:
            meter.workers("analysis", len(pool.actors), name)
    meter.workers("commit", 1)


def account(s: _Scheduler) -> None:
    """Once per turn of the Ray scheduler `s`'s loop: charge the time since the
    last turn to the state the loop waited in (after its submissions): queue
    depths, idle decode slots and actors, decode held back by the buffer."""
    now = time.monotonic()
    seconds, s.accounted = now - s.accounted, now
    depths: dict[StageKey, int] = {("probe", None): s.to_probe.waiting,
                                   ("decode", None): sum(map(len, s.todo))}
    pools: dict[str, tuple[int, int]] = {}
    for index, pool in enumerate(s.pools):
        load = s.actor_load(index)
        ready = [i for i in range(len(load)) if s.actors.actor_ready(index, i)]
        for name in pool.names:
            depths[("analysis", name)] = sum(len(us) for _, us, _ in pool.queue)
            pools[name] = (len(ready), sum(1 for i in ready if load[i] == 0))
    free = 0 if s.in_actor or s.todo else max(s.decode_slots - len(s.decoding), 0)
    s.meter.sample(depths, s.payloads.frames * s.frame_bytes)
    s.meter.waited(
        seconds, steady=s.actors.known,
        decode_blocked=(not s.in_actor and bool(s.todo)
                        and s.payloads.frames >= s.max_ready_frames),
        decode_idle_slots=free, decode_starved=bool(free) and s.planning(),
        pools=pools)
    s.meter.tick()
