"""RayEngine: the one module that talks to Ray.

Shape (`--decode workers`, the default):

    driver ──units──▶ decode tasks (CPU, 1 core each; model-free analyses such
    as shots run here) ──frames (object store)──▶ one actor pool per model
    analysis (GPU when present) ──rows──▶ driver ──▶ UnitAssembler ──▶ LakeCommitter

A unit is decoded once; its frames (one object) fan out to every pool whose
analysis has work in it, and the unit is committed once all have answered.
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
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError, TaskCancelledError

from pipeline.analyses.base import Analysis
from pipeline.analyses.model_loader import ModelInfo
from pipeline.config import LabelConfig
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.errors import ConfigError, StorageError
from pipeline.plan.probe import probe_videos
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import (
    DecodeReport,
    ModelRows,
    UnitAssembler,
    decode_stage,
    model_stage,
)
from pipeline.runner.engine import Planner, ResultSink
from pipeline.runner.ray_session import start_ray

log = logging.getLogger(__name__)

_PROBES_PER_TASK = 16  # header reads take milliseconds: batch them past task overhead
_INFER_CALLS_PER_ACTOR = 2  # one running, one queued: the actor never waits on the driver
_MAX_ACTOR_RESTARTS = 8  # past this, actors are not dying of bad input but of a bug


def _raise_if_systemic(exc: BaseException) -> None:
    """Re-raise a task's ConfigError or StorageError plainly (storage went away
    mid-run: the run stops cleanly instead of failing its videos one by one)."""
    cause = exc.cause if isinstance(exc, RayTaskError) else exc
    if isinstance(cause, ConfigError | StorageError):
        raise type(cause)(str(cause)) from None


# num_cpus=0: probes must not wait behind actors that hold every CPU (in-actor
# decoding); the scheduler bounds how many run at once instead.
@ray.remote(num_cpus=0)
def _probe_task(refs: list[VideoRef], storage: Any, max_frame_pixels: int) -> list[VideoInfo]:
    return probe_videos(refs, storage, max_frame_pixels=max_frame_pixels)


@ray.remote(num_cpus=1, num_returns=2, max_retries=0)  # the driver owns retries
def _decode_task(settings: DecodeSettings, units: list[WorkUnit], on_decoder: list[Analysis],
                 ) -> tuple[list[DecodeReport], list[DecodedUnit]]:
    """Decode units and run the model-free analyses next to the frames. Returns
    (small reports, the frames): the driver reads the reports without fetching
    the frames, which go from the object store straight to the model actors."""
    return decode_stage(settings, units, on_decoder)


class InferenceActor:
    """Holds the models of one or more analyses for its lifetime (loaded in
    __init__, inside the actor).

    Bad weights are kept as an error and raised by every call, rather than
    failing __init__: Ray reports a failed constructor as a dead actor and
    loses the reason, while a method's exception reaches the driver whole.
    """

    def __init__(self, analyses: list[Analysis]) -> None:
        self.analyses = analyses
        self.error: ConfigError | StorageError | None = None
        self.infos: dict[str, ModelInfo] = {}
        try:
            self.infos = {a.name: a.setup() for a in analyses}
        except (ConfigError, StorageError) as exc:
            self.error = exc

    def ready(self) -> dict[str, ModelInfo]:
        """What the models are, once loaded; raises the loading error if any."""
        if self.error is not None:
            raise self.error
        return self.infos

    def infer(self, *decoded: list[DecodedUnit]) -> ModelRows:
        """Analyse the decoded units of several decode tasks in one batch."""
        if self.error is not None:
            raise self.error
        return model_stage(self.analyses, [d for part in decoded for d in part])

    def decode_and_infer(self, settings: DecodeSettings, units: list[WorkUnit],
                         batch_frames: int, on_decoder: list[Analysis],
                         ) -> tuple[list[DecodeReport], ModelRows]:
        """In-actor shape: a thread decodes ahead (bounded queue) while the models run."""
        if self.error is not None:
            raise self.error
        ready: queue.Queue[tuple[list[DecodeReport], list[DecodedUnit]] | None] = \
            queue.Queue(maxsize=2)

        def produce() -> None:
            for unit in units:
                ready.put(decode_stage(settings, [unit], on_decoder))
            ready.put(None)

        threading.Thread(target=produce, daemon=True, name="vidlake-prefetch").start()
        reports: list[DecodeReport] = []
        rows: ModelRows = {a.name: {} for a in self.analyses}
        pending: list[DecodedUnit] = []
        while True:
            item = ready.get()
            if item is not None:
                reports.extend(item[0])
                pending.extend(item[1])
            if pending and (item is None or sum(len(d.frames) for d in pending) >= batch_frames):
                for name, by_unit in model_stage(self.analyses, pending).items():
                    rows[name].update(by_unit)
                pending = []
            if item is None:
                return reports, rows


@dataclass
class _Pool:
    """Actors holding the same analyses, and the decoded units queued for them."""

    names: list[str]
    options: dict[str, Any]
    n_actors: int
    batch_frames: int
    actors: list[Any] = field(default_factory=list)
    ready: list[Any] = field(default_factory=list)  # each actor's ready() ref
    queue: deque[tuple[Any, list[WorkUnit], int]] = field(default_factory=deque)


@dataclass
class _Call:
    """A call in flight: its units, deadline, and (decode) the frames' ref."""

    units: list[WorkUnit]
    deadline: float
    payload: Any = None
    pool: int = 0
    actor: int = -1
    parts: list[tuple[Any, list[WorkUnit]]] = field(default_factory=list)
    handle: Any = None  # the actor the call went to (an index's actor can be replaced)


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
        self._infos: dict[str, ModelInfo] | None = None
        self.pools = self._plan_pools()
        self._analyses_refs: dict[int, Any] = {}  # pool -> its analyses in the object store
        self._actor_deaths = 0

    # -- actors --------------------------------------------------------------
    def _plan_pools(self) -> list[_Pool]:
        """One pool per model analysis (each scales on its own); in-actor, one
        pool whose actors hold every model and decode for all of them."""
        if self.exec.decode == "in-actor":
            n = self.exec.inference_actors or max(1, self.gpus or self.cpus)
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if self.gpus \
                else {"num_cpus": 1}
            return [_Pool([a.name for a in self.models], options, n, self.exec.batch_frames)]
        pools = []
        for analysis in self.models:
            res = analysis.spec.resources
            n = res.actors or self.exec.inference_actors or max(1, self.gpus)
            # On GPU nodes an actor owns a GPU (shared when several analyses run)
            # and a core to feed it. On CPU-only nodes it reserves no logical CPU:
            # decode is the bottleneck there and a reservation would idle a core.
            gpus = res.num_gpus or (1 / len(self.models) if self.gpus else 0)
            cpus = res.num_cpus or (1 if self.gpus else 0)
            options = {"num_gpus": gpus if self.gpus else 0, "num_cpus": cpus}  # fractions ok
            pools.append(_Pool([analysis.name], options, n,
                               res.batch or self.exec.batch_frames))
        return pools

    def start_analysis(self) -> None:
        """Create the actors now; they load their models while the driver probes."""
        for index, pool in enumerate(self.pools):
            pool.actors = [self._new_actor(index) for _ in range(pool.n_actors)]
            pool.ready = [actor.ready.remote() for actor in pool.actors]

    def model_infos(self) -> dict[str, ModelInfo]:
        """Waits for each pool's first actor; raises a loading error as is."""
        if self._infos is None:
            infos: dict[str, ModelInfo] = {}
            for pool in self.pools:
                try:
                    infos.update(ray.get(pool.ready[0]))
                except RayTaskError as exc:
                    cause = exc.cause
                    if isinstance(cause, ConfigError | StorageError):
                        raise type(cause)(str(cause)) from None
                    raise
            self._infos = infos
        return self._infos

    def all_loaded(self) -> bool:
        """True once every pool's first actor has loaded its models."""
        if not self.pools:
            return True
        firsts = [pool.ready[0] for pool in self.pools]
        done, _ = ray.wait(firsts, num_returns=len(firsts), timeout=0, fetch_local=False)
        return len(done) == len(firsts)

    def actor_ready(self, pool: int, index: int) -> bool:
        done, _ = ray.wait([self.pools[pool].ready[index]], timeout=0, fetch_local=False)
        return bool(done)

    def _new_actor(self, pool: int) -> Any:
        """An actor holding the pool's analyses. They reach it through the object
        store, put once per pool: passed inline they would be part of the actor's
        creation spec, which Ray keeps in its actor table, storage credentials and all."""
        if pool not in self._analyses_refs:
            names = set(self.pools[pool].names)
            self._analyses_refs[pool] = ray.put([a for a in self.models if a.name in names])
        options = self.pools[pool].options
        return ray.remote(InferenceActor).options(**options).remote(self._analyses_refs[pool])

    def replace_actor(self, pool: int, index: int, reason: str) -> None:
        """Kill and recreate an actor; a model that cannot even start is systemic."""
        self._actor_deaths += 1
        if self._actor_deaths > _MAX_ACTOR_RESTARTS:
            raise RuntimeError(f"inference actors died {self._actor_deaths} times; last: {reason}")
        log.warning("restarting inference actor %d of pool %d: %s", index, pool, reason)
        actors = self.pools[pool].actors
        ray.kill(actors[index], no_restart=True)
        actors[index] = self._new_actor(pool)
        self.pools[pool].ready[index] = actors[index].ready.remote()

    # -- running -------------------------------------------------------------
    def run(self, refs: list[VideoRef], planner: Planner, sink: ResultSink) -> None:
        _Scheduler(self, refs, planner, sink).loop()

    def close(self) -> None:
        for pool in self.pools:
            for actor in pool.actors:
                ray.kill(actor, no_restart=True)
            pool.actors = []


def _pool_frames(units: list[WorkUnit], names: list[str]) -> int:
    """Frames the analyses `names` read in `units`: what a pool's batch counts."""
    return sum(len(w.reads) for u in units for w in u.work if w.analysis in names)


class _Scheduler:
    """The driver's event loop for one run (see the module docstring)."""

    def __init__(self, engine: RayEngine, refs: list[VideoRef], planner: Planner,
                 sink: ResultSink) -> None:
        self.e = engine
        self.planner = planner
        self.assembler = UnitAssembler(sink, [a.name for a in engine.models])
        ex = engine.exec
        self.in_actor = ex.decode == "in-actor"
        self.task_frames = ex.batch_frames if self.in_actor else max(8, ex.batch_frames // 2)
        self.to_probe: deque[list[VideoRef]] = deque(
            refs[i : i + _PROBES_PER_TASK] for i in range(0, len(refs), _PROBES_PER_TASK))
        self.probing: set[Any] = set()
        self.max_probing = max(1, engine.cpus // 2)
        self.storage_ref = ray.put(engine.config.storage)
        # Planned lazily: a probe batch's units are pulled into `todo` only as
        # the decode slots need them, and probing stops a few batches ahead, so
        # the driver holds the units in flight, not the corpus's.
        self.plans: deque[Iterator[WorkUnit]] = deque()
        self._carry: WorkUnit | None = None  # pulled, starts the next group
        self.todo: deque[list[WorkUnit]] = deque()
        self._milestones: set[str] = set()
        self.decode_slots = ex.decode_workers or engine.cpus
        self._slots_checked = time.monotonic()
        # Backpressure: decoded frames waiting for a model are bounded by bytes.
        # The budget lets decode run ahead while actors load their model.
        frame_bytes = engine.settings.size.width * engine.settings.size.height * 3
        self.max_ready_frames = max(4 * ex.batch_frames, ex.buffer_mb * 2**20 // frame_bytes)
        self.decoding: dict[Any, _Call] = {}
        self.inferring: dict[Any, _Call] = {}
        # decoded payloads still wanted by a pool: ref -> [frames, pools holding it]
        self.payloads: dict[Any, list[int]] = {}
        self.attempts: dict[str, int] = {}
        self.settings_ref = ray.put(engine.settings)
        self.on_decoder_ref = ray.put(engine.on_decoder)

    def _deadline(self, units: list[WorkUnit]) -> float:
        return time.monotonic() + self.e.exec.unit_timeout_s * (len(units) + 1)

    def _ready_frames(self) -> int:
        return sum(frames for frames, _ in self.payloads.values())

    def _actor_load(self, pool: int) -> list[int]:
        load = [0] * len(self.e.pools[pool].actors)
        for call in self.inferring.values():
            if call.pool == pool:
                load[call.actor] += 1
        return load

    def _release(self, payload: Any) -> None:
        """One pool is done with a decoded payload; drop it when none needs it."""
        entry = self.payloads.get(payload)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self.payloads[payload]

    # -- submitting ----------------------------------------------------------
    def _submit_probes(self) -> None:
        while (self.to_probe and len(self.probing) < self.max_probing
               and len(self.probing) + len(self.plans) <= 2 * self.max_probing):
            self.probing.add(_probe_task.remote(self.to_probe.popleft(), self.storage_ref,
                                                self.e.settings.max_frame_pixels))

    def _planning(self) -> bool:
        return bool(self.to_probe or self.probing or self.plans or self._carry)

    def _todo_target(self) -> int:
        """Groups planned ahead: enough to keep every decode slot (or actor) fed."""
        return (len(self.e.pools[0].actors) if self.in_actor else self.decode_slots) + 2

    def _pull(self) -> WorkUnit | None:
        """The planner's next unit, or None when every probed video is planned."""
        while self.plans:
            unit = next(self.plans[0], None)
            if unit is not None:
                return unit
            self.plans.popleft()
        return None

    def _next_group(self) -> list[WorkUnit]:
        """Consecutive units whose frames add up to about `task_frames` (one task)."""
        group: list[WorkUnit] = []
        frames = 0
        while (unit := self._carry or self._pull()) is not None:
            self._carry = None
            if group and frames + unit.n_frames > self.task_frames:
                self._carry = unit
                break
            group.append(unit)
            frames += unit.n_frames
        return group

    def _refill(self) -> None:
        while len(self.todo) < self._todo_target() and (self.plans or self._carry):
            group = self._next_group()
            if group:
                self.todo.append(group)

    def _refresh_decode_slots(self) -> None:
        """Follow the cluster's CPUs (an autoscaler adds and removes nodes mid-run)
        unless --decode-workers fixed the number."""
        if self.e.exec.decode_workers or time.monotonic() - self._slots_checked < 10:
            return
        self._slots_checked = time.monotonic()
        self.decode_slots = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def _submit_decodes(self) -> None:
        self._refresh_decode_slots()
        while (self.todo and len(self.decoding) < self.decode_slots + 1
               and self._ready_frames() < self.max_ready_frames):
            units = self.todo.popleft()
            refs: Any = _decode_task.remote(self.settings_ref, units, self.on_decoder_ref)
            done_ref, payload = refs
            self.decoding[done_ref] = _Call(units, self._deadline(units), payload=payload)

    def _flushing(self) -> bool:
        """No more frames are coming soon: send partial batches. True at the end,
        and when the buffer is full (decoding waits for the pools, so a pool
        waiting for a full batch would wait forever)."""
        done = not self.todo and not self.decoding and not self._planning()
        return done or self._ready_frames() >= self.max_ready_frames

    def _submit_inference(self) -> None:
        for index, pool in enumerate(self.e.pools):
            while pool.queue:
                load = self._actor_load(index)
                actor = min(range(len(load)), key=load.__getitem__)
                queued = sum(n for _, _, n in pool.queue)
                if load[actor] >= _INFER_CALLS_PER_ACTOR or (
                        queued < pool.batch_frames and not self._flushing()):
                    break
                parts: list[tuple[Any, list[WorkUnit]]] = []
                frames = 0
                while pool.queue and (frames < pool.batch_frames or not parts):
                    payload, units, n = pool.queue.popleft()
                    parts.append((payload, units))
                    frames += n
                units = [u for _, us in parts for u in us]
                handle = pool.actors[actor]
                ref = handle.infer.remote(*[p for p, _ in parts])
                self.inferring[ref] = _Call(units, time.monotonic() + 3600, pool=index,
                                            actor=actor, parts=parts, handle=handle)

    def _submit_in_actor(self) -> None:
        """One call per actor at a time, and only to an actor that has loaded its
        models, so a call's deadline measures its own decoding alone."""
        for actor, load in enumerate(self._actor_load(0)):
            if self.todo and load == 0 and self.e.actor_ready(0, actor):
                units = self.todo.popleft()
                handle = self.e.pools[0].actors[actor]
                ref = handle.decode_and_infer.remote(
                    self.settings_ref, units, self.e.exec.batch_frames, self.on_decoder_ref)
                self.inferring[ref] = _Call(units, self._deadline(units), actor=actor,
                                            handle=handle)

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
            infos = ray.get(ref)
        except RayTaskError as exc:
            _raise_if_systemic(exc)
            raise
        self.plans.append(self.planner(infos))

    def _fail(self, units: list[WorkUnit], reason: str, hung: bool) -> None:
        """Isolate a failed call's units; give up on a unit that fails alone."""
        if len(units) > 1:
            self.todo.extendleft([u] for u in reversed(units))
            return
        unit = units[0]
        self.attempts[unit.unit_id] = self.attempts.get(unit.unit_id, 0) + 1
        if not hung and self.attempts[unit.unit_id] < self.e.exec.max_unit_attempts:
            self.todo.appendleft([unit])
            return
        log.warning("unit %s of %s failed: %s", unit.unit_id, unit.video.uri, reason)
        self.assembler.failed(unit, reason)

    def _on_decoded(self, ref: Any) -> None:
        call = self.decoding.pop(ref)
        try:
            reports: list[DecodeReport] = ray.get(ref)
        except (RayTaskError, TaskCancelledError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError) as exc:
            _raise_if_systemic(exc)
            self._fail(call.units, f"decode worker crashed: {type(exc).__name__}", hung=False)
            return
        self._milestone("first decode done")
        to_models = {r.unit.unit_id for r in reports if self.assembler.decoded(r)}
        holders = 0
        for pool in self.e.pools:
            units = [u for u in call.units if u.unit_id in to_models
                     and any(u.work_for(name) for name in pool.names)]
            if units:
                pool.queue.append((call.payload, units, _pool_frames(units, pool.names)))
                holders += 1
        if holders:
            frames = sum(len(u.frame_indices) for u in call.units if u.unit_id in to_models)
            self.payloads[call.payload] = [frames, holders]

    def _on_inferred(self, ref: Any) -> None:
        call = self.inferring.pop(ref)
        try:
            result = ray.get(ref)
        except RayTaskError as exc:
            self.e.model_infos()  # bad weights: raises the loading error, cleanly
            _raise_if_systemic(exc)
            raise
        except RayActorError as exc:
            self._replace(call, str(exc).splitlines()[0])
            if self.in_actor:
                self._fail(call.units, "decoder process crashed", hung=False)
            else:
                pool = self.e.pools[call.pool]
                pool.queue.extendleft(reversed(
                    [(p, us, _pool_frames(us, pool.names)) for p, us in call.parts]))
            return
        self._milestone("first inference done")
        if self.in_actor:
            reports, rows = result
            for report in reports:
                self.assembler.decoded(report)
        else:
            rows = result
            for payload, _ in call.parts:
                self._release(payload)
        self.assembler.add_model_rows(call.units, rows)

    def _replace(self, call: _Call, reason: str) -> None:
        """Replace the actor `call` went to, unless it was replaced already: its
        other calls in flight fail too, and replacing again would kill the
        healthy successor (and its calls, and so on, until the restart budget
        is spent)."""
        if self.e.pools[call.pool].actors[call.actor] is call.handle:
            self.e.replace_actor(call.pool, call.actor, reason)

    def _expire(self) -> None:
        now = time.monotonic()
        timeout = self.e.exec.unit_timeout_s
        reason = f"decode timed out after {timeout:.0f}s; the worker was killed"
        for ref, call in list(self.decoding.items()):
            if now > call.deadline:
                self.decoding.pop(ref)
                ray.cancel(ref, force=True)
                self._fail(call.units, reason, hung=True)
        for ref, call in list(self.inferring.items()):
            if self.in_actor and now > call.deadline:
                self.inferring.pop(ref)
                self._replace(call, "unit timed out")
                self._fail(call.units, reason, hung=True)

    def _busy(self) -> bool:
        return bool(self._planning() or self.todo or self.decoding or self.inferring
                    or any(pool.queue for pool in self.e.pools))

    def loop(self) -> None:
        while self._busy():
            self._submit_probes()
            self._refill()
            if self.e._infos is None and self.e.all_loaded():
                self.e.model_infos()  # fail fast on bad weights, before any commit
                self._milestone("models loaded")
            if self.in_actor:
                self._submit_in_actor()
            else:
                self._submit_decodes()
                self._submit_inference()
            waiting = list(self.probing) + list(self.decoding) + list(self.inferring)
            if not waiting:
                if self.in_actor:  # actors still loading their models
                    ray.wait(self.e.pools[0].ready, num_returns=1, timeout=0.5)
                continue
            done, _ = ray.wait(waiting, num_returns=1, timeout=0.5, fetch_local=False)
            done_all, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0,
                                   fetch_local=False) if done else ([], None)
            for ref in dict.fromkeys(done + done_all):
                if ref in self.probing:
                    self._on_probed(ref)
                elif ref in self.decoding:
                    self._on_decoded(ref)
                elif ref in self.inferring:
                    self._on_inferred(ref)
            self._expire()


__all__ = ["RayEngine"]
