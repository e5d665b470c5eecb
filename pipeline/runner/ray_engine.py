"""RayEngine: a labelling run on a Ray cluster (local or joined).

Shape (`--decode workers`, the default):

    driver ──units──▶ decode tasks (CPU, 1 core each; model-free analyses such
    as shots run here) ──frames (object store)──▶ one actor pool per model
    analysis (GPU when present) ──rows──▶ driver ──▶ UnitAssembler ──▶ yielded

A unit is decoded once; its frames (one object) fan out to every pool whose
analysis has work in it, and the unit is complete once all have answered.
The driver keeps a bounded number of decode tasks in flight and a bounded
number of decoded frames waiting (backpressure), and sends frames of several
units to an actor in one call (batching across units). Decode and inference
overlap because they run in different processes. With `--decode in-actor`
each actor decodes its own units in a prefetching thread instead.

Hangs: decord can hang holding the GIL, so nothing inside the stuck process
can stop it. The driver gives every call a deadline and, past it, kills the
process from outside (`ray.cancel(force=True)` for a task, `ray.kill` for an
actor), then re-runs the call's units one by one to isolate the culprit,
which is recorded as an error. Crashed workers are retried the same way.

Where things live: ray_tasks.py (what runs on workers), actor_pools.py (the
actors), scheduling.py (the policy, no Ray), ray_session.py (starting or
joining a cluster). This module is the event loop that joins them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError, TaskCancelledError

from pipeline.analyses.base import Analysis
from pipeline.analyses.model_loader import ModelInfo
from pipeline.config import LabelConfig
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.gpu_environment import cluster_gpu_refusal
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.errors import ConfigError
from pipeline.observe.stage_meter import StageMeter
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.actor_pools import ActorPools
from pipeline.runner.batch_result import BatchResult, UnitAssembler
from pipeline.runner.engine import Planner
from pipeline.runner.metering import (
    account,
    count_analyses,
    count_decoded,
    count_submitted,
    describe_workers,
)
from pipeline.runner.ray_session import start_ray
from pipeline.runner.ray_tasks import PROBES_PER_TASK, decode_task, probe_task, raise_if_systemic
from pipeline.runner.scheduling import (
    INFER_CALLS_PER_ACTOR,
    Call,
    Deadlines,
    ModelNeeds,
    PayloadLedger,
    ProbeBatches,
    Retries,
    UnitFeed,
    plan_pools,
    pool_frames,
    running_calls,
    take_batch,
)

log = logging.getLogger(__name__)


class RayEngine:
    """Runs probes, decode and inference on a Ray cluster (local or joined)."""

    name = "ray"

    def __init__(self, config: LabelConfig, analyses: list[Analysis],
                 settings: DecodeSettings) -> None:
        self.config = config
        self.settings = settings
        self.exec = config.execution
        self.on_decoder = [a for a in analyses if a.on_decoder]
        self.models = [a for a in analyses if not a.on_decoder]
        start_ray(self.exec.address)
        resources = ray.cluster_resources()
        self.cpus = max(1, int(resources.get("CPU", 1)))
        self.gpus = int(resources.get("GPU", 0))
        if (problem := cluster_gpu_refusal(self.exec, self.gpus)) is not None:
            raise ConfigError(problem)
        needs = [ModelNeeds(a.name, **dataclasses.asdict(a.spec.resources)) for a in self.models]
        self.actors = ActorPools(plan_pools(needs, self.exec, self.cpus, self.gpus),
                                 self.models)

    def start_analysis(self) -> None:
        self.actors.start()

    def model_infos(self) -> dict[str, ModelInfo]:
        return self.actors.model_infos()

    def run(self, refs: Iterable[VideoRef], planner: Planner,
            meter: StageMeter) -> Iterator[BatchResult]:
        from pipeline.observe.ray_metrics import RayMetricsSink

        meter.sinks.append(RayMetricsSink(meter.run_id))
        return _Scheduler(self, refs, planner, meter).loop()

    def close(self) -> None:
        self.actors.close()


class _Scheduler:
    """The driver's event loop for one run (see the module docstring)."""

    def __init__(self, engine: RayEngine, refs: Iterable[VideoRef], planner: Planner,
                 meter: StageMeter) -> None:
        self.e = engine
        self.meter = meter
        self.actors = engine.actors
        self.pools = engine.actors.pools
        self.planner = planner
        self.assembler = UnitAssembler([a.name for a in engine.models])
        ex = engine.exec
        self.in_actor = ex.decode == "in-actor"
        self.feed = UnitFeed(ex.batch_frames if self.in_actor else max(8, ex.batch_frames // 2))
        self.to_probe = ProbeBatches(refs, PROBES_PER_TASK)
        self.probing: set[Any] = set()
        self.max_probing = max(1, engine.cpus // 2)
        self.storage_ref = ray.put(engine.config.storage)
        self.todo: deque[list[WorkUnit]] = deque()
        self._milestones: set[str] = set()
        self.decode_slots = ex.decode_workers or engine.cpus
        self._slots_checked = time.monotonic()
        # Backpressure: decoded frames waiting for a model are bounded by bytes.
        # The budget lets decode run ahead while actors load their model.
        frame_bytes = engine.settings.size.width * engine.settings.size.height * 3
        self.frame_bytes = frame_bytes
        self.max_ready_frames = max(4 * ex.batch_frames, ex.buffer_mb * 2**20 // frame_bytes)
        self.decoding: dict[Any, Call] = {}
        self.inferring: dict[Any, Call] = {}
        self.payloads = PayloadLedger()
        self.retries = Retries(ex.max_unit_attempts)
        self.deadlines = Deadlines(ex.unit_timeout_s, ex.inference_timeout_s)
        self.settings_ref = ray.put(engine.settings)
        self.on_decoder_ref = ray.put(engine.on_decoder)
        self.on_decoder_names = [a.name for a in engine.on_decoder]
        self.accounted = time.monotonic()
        describe_workers(self)

    def actor_load(self, pool: int) -> list[int]:
        load = [0] * len(self.pools[pool].actors)
        for call in self.inferring.values():
            if call.pool == pool:
                load[call.actor] += 1
        return load

    # -- submitting ----------------------------------------------------------
    def _submit_probes(self) -> None:
        while (self.to_probe and len(self.probing) < self.max_probing
               and len(self.probing) + len(self.feed.plans) <= 2 * self.max_probing):
            batch = self.to_probe.popleft()
            self.meter.add("probe", items_in=len(batch))
            self.probing.add(probe_task.remote(batch, self.storage_ref,
                                               self.e.settings.max_frame_pixels,
                                               self.e.settings.index_keyframes))

    def planning(self) -> bool:
        return bool(self.to_probe or self.probing or self.feed.pending)

    def _todo_target(self) -> int:
        """Groups planned ahead: enough to keep every decode slot (or actor) fed."""
        return (len(self.pools[0].actors) if self.in_actor else self.decode_slots) + 2

    def _refresh_decode_slots(self) -> None:
        """Follow the cluster's CPUs (an autoscaler adds and removes nodes mid-run)
        unless --decode-workers fixed the number."""
        if self.e.exec.decode_workers or time.monotonic() - self._slots_checked < 10:
            return
        self._slots_checked = time.monotonic()
        self.decode_slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        describe_workers(self)  # the new slot count, and the cluster's size for the cost

    def _submit_decodes(self) -> None:
        self._refresh_decode_slots()
        # One task beyond the CPUs waits in Ray's queue, so a slot never idles
        # between tasks; --decode-workers N means N at once, never N + 1.
        limit = self.decode_slots + (0 if self.e.exec.decode_workers else 1)
        while (self.todo and len(self.decoding) < limit
               and self.payloads.frames < self.max_ready_frames):
            units = self.todo.popleft()
            count_submitted(self.meter, units)
            refs: Any = decode_task.remote(self.settings_ref, units, self.on_decoder_ref)
            done_ref, payload = refs
            self.decoding[done_ref] = Call(units, self.deadlines.decode(time.monotonic(),
                                                                        len(units)),
                                           payload=payload)

    def _flushing(self) -> bool:
        """No more frames are coming soon: send partial batches. True at the end,
        and when the buffer is full (decoding waits for the pools, so a pool
        waiting for a full batch would wait forever)."""
        done = not self.todo and not self.decoding and not self.planning()
        return done or self.payloads.frames >= self.max_ready_frames

    def _submit_inference(self) -> None:
        for index, pool in enumerate(self.pools):
            while pool.queue:
                load = self.actor_load(index)
                actor = min(range(len(load)), key=load.__getitem__)
                if load[actor] >= INFER_CALLS_PER_ACTOR:
                    break
                parts = take_batch(pool.queue, pool.plan.batch_frames, self._flushing())
                if not parts:
                    break
                handle = pool.actors[actor]
                units = [u for _, us in parts for u in us]
                ref = handle.infer.remote({u.unit_id for u in units}, *[p for p, _ in parts])
                self.inferring[ref] = Call(units,
                                           self.deadlines.inference(time.monotonic()),
                                           pool=index, actor=actor, parts=parts, handle=handle)

    def _submit_in_actor(self) -> None:
        """One call per actor at a time, and only to an actor that has loaded its
        models, so a call's deadline measures its own decoding alone."""
        for actor, load in enumerate(self.actor_load(0)):
            if self.todo and load == 0 and self.actors.actor_ready(0, actor):
                units = self.todo.popleft()
                count_submitted(self.meter, units)
                handle = self.pools[0].actors[actor]
                ref = handle.decode_and_infer.remote(
                    self.settings_ref, units, self.e.exec.batch_frames, self.on_decoder_ref)
                self.inferring[ref] = Call(units, self.deadlines.decode(time.monotonic(),
                                                                        len(units)),
                                           actor=actor, handle=handle)

    # -- completing ----------------------------------------------------------
    def _milestone(self, name: str) -> None:
        """Log when start-up milestones are first reached (tuning start-up)."""
        if name not in self._milestones:
            self._milestones.add(name)
            log.info("milestone: %s", name)

    def _on_probed(self, ref: Any) -> None:
        self._milestone("first probe done")
        self.probing.discard(ref)
        try:
            infos, times = ray.get(ref)
        except RayTaskError as exc:
            raise_if_systemic(exc)
            raise
        self.meter.add("probe", items_out=len(infos))
        self.meter.add_times(times)
        self.feed.add(self.planner(infos))

    def _fail(self, units: list[WorkUnit], reason: str, hung: bool) -> None:
        """Isolate a failed call's units; give up on a unit that fails alone."""
        again, given_up = self.retries.after_failure(units, hung)
        self.todo.extendleft(reversed(again))
        if given_up is not None:
            log.warning("unit %s of %s failed: %s", given_up.unit_id, given_up.video.uri,
                        reason)
            self.assembler.failed(given_up, reason)

    def _on_decoded(self, ref: Any) -> None:
        call = self.decoding.pop(ref)
        try:
            reports, times = ray.get(ref)
        except (RayTaskError, TaskCancelledError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError) as exc:
            raise_if_systemic(exc)
            self._fail(call.units, f"decode worker crashed: {type(exc).__name__}", hung=False)
            return
        self._milestone("first decode done")
        count_decoded(self.meter, reports, times, self.on_decoder_names)
        to_models = {r.unit.unit_id for r in reports if self.assembler.decoded(r)}
        holders = 0
        for pool in self.pools:
            units = [u for u in call.units if u.unit_id in to_models
                     and any(u.work_for(name) for name in pool.names)]
            if units:
                pool.queue.append((call.payload, units, pool_frames(units, pool.names)))
                count_analyses(self.meter, pool.names, units, "in")
                holders += 1
        if holders:
            frames = sum(len(u.frame_indices) for u in call.units if u.unit_id in to_models)
            self.payloads.hold(call.payload, frames, holders)

    def _on_inferred(self, ref: Any) -> None:
        call = self.inferring.pop(ref)
        try:
            result = ray.get(ref)
        except RayTaskError as exc:
            self.actors.model_infos()  # bad weights: raises the loading error, cleanly
            raise_if_systemic(exc)
            raise
        except RayActorError as exc:
            self._replace(call, str(exc).splitlines()[0])
            if self.in_actor:
                self._fail(call.units, "decoder process crashed", hung=False)
            else:
                pool = self.pools[call.pool]
                pool.queue.extendleft(reversed(
                    [(p, us, pool_frames(us, pool.names)) for p, us in call.parts]))
            return
        self._milestone("first inference done")
        if self.in_actor:
            reports, rows, times = result
            count_decoded(self.meter, reports, times, self.on_decoder_names)
            for report in reports:
                self.assembler.decoded(report)
            ok = {r.unit.unit_id for r in reports if r.outcome.status == "ok"}
            units = [u for u in call.units if u.unit_id in ok]
            count_analyses(self.meter, self.pools[0].names, units, "in")
        else:
            rows, times = result
            self.meter.add_times(times)
            units = call.units
            for payload, _ in call.parts:
                self.payloads.release(payload)
        count_analyses(self.meter, self.pools[call.pool].names, units, "out")
        self.assembler.add_model_rows(call.units, rows)

    def _replace(self, call: Call, reason: str) -> None:
        """Replace the actor `call` went to, unless it was replaced already: its
        other calls in flight fail too, and replacing again would kill the
        healthy successor (and its calls, and so on, until the restart budget
        is spent)."""
        if self.pools[call.pool].actors[call.actor] is call.handle:
            self.actors.replace(call.pool, call.actor, reason)

    def _expire(self) -> None:
        now = time.monotonic()
        timeout = self.e.exec.unit_timeout_s
        reason = f"decode timed out after {timeout:.0f}s; the worker was killed"
        for ref, call in list(self.decoding.items()):
            if now > call.deadline:
                self.decoding.pop(ref)
                ray.cancel(ref, force=True)
                self._fail(call.units, reason, hung=True)
        running = running_calls(self.inferring,
                                lambda c: self.actors.actor_ready(c.pool, c.actor))
        for ref, call in list(self.inferring.items()):
            if self.in_actor:
                if now > call.deadline:
                    self.inferring.pop(ref)
                    self._replace(call, "unit timed out")
                    self._fail(call.units, reason, hung=True)
            elif ref not in running:
                call.deadline = self.deadlines.inference(now)  # its clock starts when it runs
            elif now > call.deadline:
                self.inferring.pop(ref)
                self._expire_inference(call)

    def _expire_inference(self, call: Call) -> None:
        """A model call ran past --inference-timeout: replace its actor (its other
        calls are re-queued as after a crash), run the call's units again one
        per call, and record a unit whose call hangs alone as an error (a later
        run tries it again)."""
        timeout = self.e.exec.inference_timeout_s
        self._replace(call, f"inference timed out after {timeout:g}s")
        again, given_up = self.retries.after_failure(call.units, hung=True)
        pool = self.pools[call.pool]
        payload_of = {u.unit_id: p for p, us in call.parts for u in us}
        for (unit,) in reversed(again):
            # a full batch's worth of frames, so that it goes alone
            frames = max(pool.plan.batch_frames, pool_frames([unit], pool.names))
            pool.queue.appendleft((payload_of[unit.unit_id], [unit], frames))
            self.payloads.share(payload_of[unit.unit_id])
        for payload, _ in call.parts:
            self.payloads.release(payload)
        if given_up is not None:
            reason = f"inference timed out after {timeout:g}s; the model actor was replaced"
            log.warning("unit %s of %s failed: %s", given_up.unit_id, given_up.video.uri,
                        reason)
            self.assembler.abandon(given_up, reason)

    def _busy(self) -> bool:
        return bool(self.planning() or self.todo or self.decoding or self.inferring
                    or any(pool.queue for pool in self.pools))

    def _wait(self) -> list[Any]:
        """Refs done now (waiting up to 0.5 s for the first)."""
        waiting = list(self.probing) + list(self.decoding) + list(self.inferring)
        if not waiting:
            if self.in_actor:  # actors still loading their models
                ray.wait(self.pools[0].ready, num_returns=1, timeout=0.5)
            return []
        done, _ = ray.wait(waiting, num_returns=1, timeout=0.5, fetch_local=False)
        done_all, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0,
                               fetch_local=False) if done else ([], None)
        return list(dict.fromkeys(done + done_all))

    def loop(self) -> Iterator[BatchResult]:
        """Run until every probed video's units are done, yielding each unit's
        result as it completes."""
        while self._busy():
            self._submit_probes()
            self.feed.refill(self.todo, self._todo_target())
            if not self.actors.known and self.actors.all_loaded():
                self.actors.model_infos()  # fail fast on bad weights, before any commit
                self._milestone("models loaded")
            if self.in_actor:
                self._submit_in_actor()
            else:
                self._submit_decodes()
                self._submit_inference()
            waited = self._wait()
            account(self)
            for ref in waited:
                if ref in self.probing:
                    self._on_probed(ref)
                elif ref in self.decoding:
                    self._on_decoded(ref)
                elif ref in self.inferring:
                    self._on_inferred(ref)
            self._expire()
            yield from self.assembler.take()


__all__ = ["RayEngine"]
