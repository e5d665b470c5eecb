"""RayEngine: the one module that talks to Ray.

Shape (`--decode workers`, the default):

    driver ──units──▶ decode tasks (CPU, 1 core each) ──frames (object store)──▶
    inference actor(s) (GPU when present) ──rows──▶ driver ──▶ LakeCommitter

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
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError, TaskCancelledError

from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.analyses.frame_model import FrameModelInfo
from pipeline.config import LabelConfig
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.unit_decoder import DecodeSettings, decode_unit, decode_units
from pipeline.errors import ConfigError, StorageError
from pipeline.plan.probe import probe_videos
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import BatchResult, analyse, failed_outcome
from pipeline.runner.engine import Planner, ResultSink

log = logging.getLogger(__name__)

_PROBES_PER_TASK = 16  # header reads take milliseconds: batch them past task overhead
_INFER_CALLS_PER_ACTOR = 2  # one running, one queued: the actor never waits on the driver
_MAX_ACTOR_RESTARTS = 8  # past this, actors are not dying of bad input but of a bug


def start_ray(address: str | None) -> None:
    """Join `address` (or RAY_ADDRESS), or start a local Ray in this process."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    # Local workers import what the driver can: its working directory too.
    paths = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # address="local": always a fresh in-process cluster, never a stray one that
    # `ray start` left running on this machine.
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             configure_logging=True, log_to_driver=True)


# num_cpus=0: probes must not wait behind actors that hold every CPU (in-actor
# decoding); the scheduler bounds how many run at once instead.
@ray.remote(num_cpus=0)
def _probe_task(refs: list[VideoRef], storage: Any) -> list[VideoInfo]:
    return probe_videos(refs, storage)


@ray.remote(num_cpus=1, num_returns=2, max_retries=0)  # the driver owns retries
def _decode_task(settings: DecodeSettings, units: list[WorkUnit]) -> tuple[int, list[DecodedUnit]]:
    """Decode units; returns (frames decoded, the units). The small first value
    lets the driver learn the task is done without fetching frames."""
    decoded = decode_units(settings, units)
    return sum(len(d.frames) for d in decoded), decoded


class InferenceActor:
    """Holds one model for its lifetime (loaded in __init__, inside the actor).

    Bad weights are kept as an error and raised by every call, rather than
    failing __init__: Ray reports a failed constructor as a dead actor and
    loses the reason, while a method's exception reaches the driver whole.
    """

    def __init__(self, classifier: FrameClassifier) -> None:
        self.classifier = classifier
        self.error: ConfigError | StorageError | None = None
        try:
            self.info = classifier.setup()
        except (ConfigError, StorageError) as exc:
            self.error = exc

    def ready(self) -> FrameModelInfo:
        """What the model is, once loaded; raises the loading error if any."""
        if self.error is not None:
            raise self.error
        return self.info

    def infer(self, *decoded: list[DecodedUnit]) -> BatchResult:
        """Analyse the decoded units of several decode tasks in one batch."""
        if self.error is not None:
            raise self.error
        return analyse(self.classifier, [d for part in decoded for d in part])

    def decode_and_infer(self, settings: DecodeSettings, units: list[WorkUnit],
                         batch_frames: int) -> BatchResult:
        """In-actor shape: a thread decodes ahead (bounded queue) while the model runs."""
        if self.error is not None:
            raise self.error
        ready: queue.Queue[DecodedUnit | None] = queue.Queue(maxsize=2)

        def produce() -> None:
            for unit in units:
                ready.put(decode_unit(settings, unit))
            ready.put(None)

        threading.Thread(target=produce, daemon=True, name="vidlake-prefetch").start()
        merged = BatchResult()
        pending: list[DecodedUnit] = []
        while (item := ready.get()) is not None:
            pending.append(item)
            if sum(len(d.frames) for d in pending) >= batch_frames:
                _merge(merged, analyse(self.classifier, pending))
                pending = []
        if pending:
            _merge(merged, analyse(self.classifier, pending))
        return merged


def _merge(into: BatchResult, part: BatchResult) -> None:
    import pyarrow as pa

    into.outcomes.extend(part.outcomes)
    for name, table in part.tables.items():
        into.tables[name] = pa.concat_tables([into.tables[name], table]) \
            if name in into.tables else table


@dataclass
class _Call:
    """A call in flight: its units, deadline, and (decode) the frames' ref."""

    units: list[WorkUnit]
    deadline: float
    payload: Any = None
    actor: int = -1
    parts: list[tuple[Any, list[WorkUnit]]] = field(default_factory=list)


class RayEngine:
    """Runs probes, decode and inference on a Ray cluster (local or joined)."""

    name = "ray"

    def __init__(self, config: LabelConfig, settings: DecodeSettings) -> None:
        self.config = config
        self.settings = settings
        self.exec = config.execution
        start_ray(self.exec.address)
        resources = ray.cluster_resources()
        self.cpus = max(1, int(resources.get("CPU", 1)))
        self.gpus = int(resources.get("GPU", 0))
        self._info: FrameModelInfo | None = None
        self._actors: list[Any] = []
        self._ready: list[Any] = []
        self._actor_deaths = 0

    # -- actors --------------------------------------------------------------
    def start_analysis(self) -> None:
        """Create the actors now; they load the model while the driver probes."""
        self._actors = [self._new_actor() for _ in range(self._n_actors())]
        self._ready = [actor.ready.remote() for actor in self._actors]

    def model_info(self) -> FrameModelInfo:
        """Waits for the first actor's model; raises its loading error as is."""
        if self._info is None:
            try:
                self._info = ray.get(self._ready[0])
            except RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, ConfigError | StorageError):
                    raise type(cause)(str(cause)) from None
                raise
        return self._info

    def actor_ready(self, index: int) -> bool:
        """True once actor `index` has loaded its model."""
        done, _ = ray.wait([self._ready[index]], timeout=0, fetch_local=False)
        return bool(done)

    def _new_actor(self) -> Any:
        threads = None if self.gpus else max(1, self.exec.inference_threads)
        classifier = FrameClassifier(self.config.model, micro_batch=self.exec.batch_frames,
                                     storage=self.config.storage, threads=threads)
        # On GPU nodes an actor owns one GPU and a core to feed it. On CPU-only
        # nodes it reserves no logical CPU: decode is the bottleneck there and a
        # reservation would idle a core; the OS shares cores between them.
        options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if self.gpus else {"num_cpus": 0}
        if self.exec.decode == "in-actor" and not self.gpus:
            options = {"num_cpus": 1}  # it decodes: it needs its core
        return ray.remote(InferenceActor).options(**options).remote(classifier)

    def _n_actors(self) -> int:
        if self.exec.inference_actors:
            return self.exec.inference_actors
        if self.exec.decode == "in-actor":
            return max(1, self.gpus or self.cpus)
        return max(1, self.gpus)

    def replace_actor(self, index: int, reason: str) -> None:
        """Kill and recreate actor `index`; a model that cannot even start is systemic."""
        self._actor_deaths += 1
        if self._actor_deaths > _MAX_ACTOR_RESTARTS:
            raise RuntimeError(f"inference actors died {self._actor_deaths} times; last: {reason}")
        log.warning("restarting inference actor %d: %s", index, reason)
        ray.kill(self._actors[index], no_restart=True)
        self._actors[index] = self._new_actor()
        self._ready[index] = self._actors[index].ready.remote()

    # -- running -------------------------------------------------------------
    def run(self, refs: list[VideoRef], planner: Planner, sink: ResultSink) -> None:
        _Scheduler(self, refs, planner, sink).loop()

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []


def _group(units: list[WorkUnit], frames_per_group: int) -> list[list[WorkUnit]]:
    """Consecutive units whose frames add up to about `frames_per_group`."""
    groups: list[list[WorkUnit]] = []
    current: list[WorkUnit] = []
    count = 0
    for unit in units:
        if current and count + unit.n_frames > frames_per_group:
            groups.append(current)
            current, count = [], 0
        current.append(unit)
        count += unit.n_frames
    if current:
        groups.append(current)
    return groups


class _Scheduler:
    """The driver's event loop for one run (see the module docstring)."""

    def __init__(self, engine: RayEngine, refs: list[VideoRef], planner: Planner,
                 sink: ResultSink) -> None:
        self.e = engine
        self.planner = planner
        self.sink = sink
        ex = engine.exec
        self.in_actor = ex.decode == "in-actor"
        self.task_frames = ex.batch_frames if self.in_actor else max(8, ex.batch_frames // 2)
        self.to_probe: deque[list[VideoRef]] = deque(
            refs[i : i + _PROBES_PER_TASK] for i in range(0, len(refs), _PROBES_PER_TASK))
        self.probing: set[Any] = set()
        self.max_probing = max(1, engine.cpus // 2)
        self.storage_ref = ray.put(engine.config.storage)
        self.todo: deque[list[WorkUnit]] = deque()
        self._milestones: set[str] = set()
        self.decode_slots = ex.decode_workers or engine.cpus
        # Backpressure: decoded frames waiting for a model are bounded by bytes.
        # The budget lets decode run ahead while actors load their model.
        frame_bytes = engine.settings.size.width * engine.settings.size.height * 3
        self.max_ready_frames = max(4 * ex.batch_frames, ex.buffer_mb * 2**20 // frame_bytes)
        self.decoding: dict[Any, _Call] = {}
        self.inferring: dict[Any, _Call] = {}
        self.ready: deque[tuple[Any, list[WorkUnit], int]] = deque()
        self.attempts: dict[str, int] = {}
        self.settings_ref = ray.put(engine.settings)

    def _deadline(self, units: list[WorkUnit]) -> float:
        return time.monotonic() + self.e.exec.unit_timeout_s * (len(units) + 1)

    def _ready_frames(self) -> int:
        return sum(n for _, _, n in self.ready)

    def _actor_load(self) -> list[int]:
        load = [0] * len(self.e._actors)
        for call in self.inferring.values():
            load[call.actor] += 1
        return load

    # -- submitting ----------------------------------------------------------
    def _submit_probes(self) -> None:
        while self.to_probe and len(self.probing) < self.max_probing:
            self.probing.add(_probe_task.remote(self.to_probe.popleft(), self.storage_ref))

    def _planning(self) -> bool:
        return bool(self.to_probe or self.probing)

    def _submit_decodes(self) -> None:
        while (self.todo and len(self.decoding) < self.decode_slots + 1
               and self._ready_frames() < self.max_ready_frames):
            units = self.todo.popleft()
            refs: Any = _decode_task.remote(self.settings_ref, units)
            done_ref, payload = refs
            self.decoding[done_ref] = _Call(units, self._deadline(units), payload=payload)

    def _submit_inference(self) -> None:
        batch = self.e.exec.batch_frames
        while self.ready:
            load = self._actor_load()
            actor = min(range(len(load)), key=load.__getitem__)
            flushing = not self.todo and not self.decoding and not self._planning()
            if load[actor] >= _INFER_CALLS_PER_ACTOR or (
                    self._ready_frames() < batch and not flushing):
                return
            parts: list[tuple[Any, list[WorkUnit]]] = []
            frames = 0
            while self.ready and (frames < batch or not parts):
                payload, units, n = self.ready.popleft()
                parts.append((payload, units))
                frames += n
            units = [u for _, us in parts for u in us]
            ref = self.e._actors[actor].infer.remote(*[p for p, _ in parts])
            self.inferring[ref] = _Call(units, time.monotonic() + 3600, actor=actor, parts=parts)

    def _submit_in_actor(self) -> None:
        """One call per actor at a time, and only to an actor that has loaded its
        model, so a call's deadline measures its own decoding alone."""
        for actor, load in enumerate(self._actor_load()):
            if self.todo and load == 0 and self.e.actor_ready(actor):
                units = self.todo.popleft()
                ref = self.e._actors[actor].decode_and_infer.remote(
                    self.settings_ref, units, self.e.exec.batch_frames)
                self.inferring[ref] = _Call(units, self._deadline(units), actor=actor)

    # -- completing ----------------------------------------------------------
    def _milestone(self, name: str) -> None:
        """Log when start-up milestones are first reached (tuning start-up)."""
        if name not in self._milestones:
            self._milestones.add(name)
            log.info("milestone: %s", name)

    def _on_probed(self, ref: Any) -> None:
        self._milestone("first probe done")
        self.probing.discard(ref)
        units = self.planner(ray.get(ref))
        self.todo.extend(_group(units, self.task_frames))

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
        self.sink(BatchResult([(unit, failed_outcome(unit, reason))]))

    def _on_decoded(self, ref: Any) -> None:
        call = self.decoding.pop(ref)
        try:
            frames = ray.get(ref)
        except (RayTaskError, TaskCancelledError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError) as exc:
            self._fail(call.units, f"decode worker crashed: {type(exc).__name__}", hung=False)
            return
        self.ready.append((call.payload, call.units, frames))
        self._milestone("first decode done")

    def _on_inferred(self, ref: Any) -> None:
        call = self.inferring.pop(ref)
        try:
            result = ray.get(ref)
        except RayTaskError:
            self.e.model_info()  # bad weights: raises the loading error, cleanly
            raise
        except RayActorError as exc:
            self.e.replace_actor(call.actor, str(exc).splitlines()[0])
            if self.in_actor:
                self._fail(call.units, "decoder process crashed", hung=False)
            else:
                self.ready.extendleft(reversed([(p, us, sum(u.n_frames for u in us))
                                                for p, us in call.parts]))
            return
        self._milestone("first inference done")
        self.sink(result)

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
                self.e.replace_actor(call.actor, "unit timed out")
                self._fail(call.units, reason, hung=True)

    def loop(self) -> None:
        while self._planning() or self.todo or self.decoding or self.ready or self.inferring:
            self._submit_probes()
            if self.e._info is None and self.e.actor_ready(0):
                self.e.model_info()  # fail fast on bad weights, before any commit
                self._milestone("model loaded")
            if self.in_actor:
                self._submit_in_actor()
            else:
                self._submit_decodes()
                self._submit_inference()
            waiting = list(self.probing) + list(self.decoding) + list(self.inferring)
            if not waiting:
                if self.in_actor:  # actors still loading their model
                    ray.wait(self.e._ready, num_returns=1, timeout=0.5)
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


__all__ = ["RayEngine", "start_ray"]
