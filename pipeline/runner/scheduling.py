"""The scheduling policy of a Ray run, with no Ray in it.

What ray_engine.py's event loop decides, as plain objects it consults: how
actors are pooled per analysis, how planned units are grouped into tasks,
how decoded frames waiting for models are counted (backpressure), how a
failed call's units are isolated and retried, and when a call is overdue.
Unit-tested with plain values (tests/runner/test_scheduling.py).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import ExecutionSpec
from pipeline.corpus.video_ref import VideoRef
from pipeline.plan.work_unit import WorkUnit

INFER_CALLS_PER_ACTOR = 2  # one running, one queued: the actor never waits on the driver
MAX_ACTOR_RESTARTS = 8  # past this, actors are not dying of bad input but of a bug

# (frames ref, units of it this pool analyses, frames they read): a pool's queue item
Queued = tuple[Any, list[WorkUnit], int]


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """`items` in lists of `size` (the last one shorter), pulled as asked for."""
    items = iter(items)
    while batch := list(itertools.islice(items, size)):
        yield batch


class ProbeBatches:
    """The videos still to probe, `size` at a time, pulled from a stream only as
    the scheduler asks (a batch is read ahead to answer "any left?")."""

    def __init__(self, refs: Iterable[VideoRef], size: int) -> None:
        self._batches = batched(refs, size)
        self._next: list[VideoRef] | None = None

    def __bool__(self) -> bool:
        if self._next is None:
            self._next = next(self._batches, None) or []
        return bool(self._next)

    @property
    def waiting(self) -> int:
        """Videos read ahead and not yet probed (the stream's rest is unknown)."""
        return len(self._next or [])

    def popleft(self) -> list[VideoRef]:
        if not self:
            raise IndexError("no videos left to probe")
        batch, self._next = self._next or [], None
        return batch


@dataclass(frozen=True)
class PoolPlan:
    """Actors holding the same analyses: Ray options per actor, how many, and
    frames per inference call."""

    names: list[str]
    options: dict[str, Any]
    n_actors: int
    batch_frames: int


@dataclass(frozen=True)
class ModelNeeds:
    """What the pool planner needs of a model analysis: its name and resources."""

    name: str
    actors: int = 0
    num_gpus: float = 0.0
    num_cpus: float = 0.0
    batch: int = 0


def plan_pools(models: Sequence[ModelNeeds], execution: ExecutionSpec, cpus: int,
               gpus: int) -> list[PoolPlan]:
    """One pool per model analysis (each scales on its own); in-actor, one pool
    whose actors hold every model and decode for all of them."""
    if not models:
        return []
    if execution.decode == "in-actor":
        n = execution.inference_actors or max(1, gpus or cpus)
        options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
        return [PoolPlan([m.name for m in models], options, n, execution.batch_frames)]
    pools = []
    for model in models:
        n = model.actors or execution.inference_actors or max(1, gpus)
        # On GPU nodes an actor owns a GPU (shared when several analyses run)
        # and a core to feed it. On CPU-only nodes it reserves no logical CPU:
        # decode is the bottleneck there and a reservation would idle a core.
        share = model.num_gpus or (1 / len(models) if gpus else 0)
        cpu = model.num_cpus or (1 if gpus else 0)
        options = {"num_gpus": share if gpus else 0, "num_cpus": cpu}  # fractions ok
        pools.append(PoolPlan([model.name], options, n, model.batch or execution.batch_frames))
    return pools


def pool_frames(units: list[WorkUnit], names: list[str]) -> int:
    """Frames the analyses `names` read in `units`: what a pool's batch counts."""
    return sum(len(w.reads) for u in units for w in u.work if w.analysis in names)


@dataclass
class Call:
    """A call in flight: its units, deadline, and (decode) the frames' ref;
    (inference) the pool, the actor index and handle, and the frames' parts."""

    units: list[WorkUnit]
    deadline: float
    payload: Any = None
    pool: int = 0
    actor: int = -1
    parts: list[tuple[Any, list[WorkUnit]]] = field(default_factory=list)
    handle: Any = None  # the actor the call went to (an index's actor can be replaced)


class UnitFeed:
    """Planned units, pulled lazily into task-sized groups: a probe batch's plan
    is only run as far as the groups it feeds, so the driver holds the units
    in flight, not the corpus's."""

    def __init__(self, task_frames: int) -> None:
        self.task_frames = task_frames
        self.plans: deque[Iterator[WorkUnit]] = deque()
        self._carry: WorkUnit | None = None  # pulled, starts the next group

    def add(self, plan: Iterator[WorkUnit]) -> None:
        self.plans.append(plan)

    @property
    def pending(self) -> bool:
        """Whether any planned unit may still come."""
        return bool(self.plans or self._carry)

    def _pull(self) -> WorkUnit | None:
        """The next planned unit, or None when every plan is run to its end."""
        while self.plans:
            unit = next(self.plans[0], None)
            if unit is not None:
                return unit
            self.plans.popleft()
        return None

    def next_group(self) -> list[WorkUnit]:
        """Consecutive units whose frames add up to about `task_frames` (one task;
        a unit bigger than that is a task alone)."""
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

    def refill(self, todo: deque[list[WorkUnit]], target: int) -> None:
        """Top `todo` up to `target` groups while units are planned."""
        while len(todo) < target and self.pending:
            group = self.next_group()
            if group:
                todo.append(group)


class PayloadLedger:
    """Decoded frames waiting for model pools: ref -> [frames, pools holding it].
    Its total is what backpressure bounds."""

    def __init__(self) -> None:
        self._held: dict[Hashable, list[int]] = {}

    def hold(self, payload: Hashable, frames: int, pools: int) -> None:
        self._held[payload] = [frames, pools]

    def share(self, payload: Hashable) -> None:
        """One more queue item holds `payload` (a call's units split up)."""
        if payload in self._held:
            self._held[payload][1] += 1

    def release(self, payload: Hashable) -> None:
        """One pool is done with `payload`; forget it when none needs it."""
        entry = self._held.get(payload)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._held[payload]

    @property
    def frames(self) -> int:
        return sum(frames for frames, _ in self._held.values())


class Retries:
    """Fault isolation: a failed call's units run again one by one; a unit that
    fails alone is retried after a crash (up to `max_attempts` tries) and given
    up on at once after a hang (a hang costs a timeout each time)."""

    def __init__(self, max_attempts: int) -> None:
        self.max_attempts = max_attempts
        self.attempts: dict[str, int] = {}

    def after_failure(self, units: list[WorkUnit], hung: bool,
                      ) -> tuple[list[list[WorkUnit]], WorkUnit | None]:
        """(groups to run again first, the unit to record as failed or None)."""
        if len(units) > 1:
            return [[u] for u in units], None
        unit = units[0]
        self.attempts[unit.unit_id] = self.attempts.get(unit.unit_id, 0) + 1
        if not hung and self.attempts[unit.unit_id] < self.max_attempts:
            return [[unit]], None
        return [], unit


@dataclass(frozen=True)
class Deadlines:
    """When a call is overdue (monotonic seconds). A decode task of n units gets
    n + 1 unit timeouts; an inference call gets its timeout from when its
    actor starts running it, not from when it was queued."""

    unit_timeout_s: float
    inference_timeout_s: float

    def decode(self, now: float, n_units: int) -> float:
        return now + self.unit_timeout_s * (n_units + 1)

    def inference(self, now: float) -> float:
        return now + self.inference_timeout_s


def running_calls(calls: dict[Any, Call], loaded: Callable[[Call], bool]) -> set[Any]:
    """The refs of the calls actors are running now: each actor's oldest call in
    flight (an actor runs its calls one at a time, in order), if it has loaded
    its models (`loaded`). `calls` is in submission order."""
    oldest: dict[int, tuple[Any, Call]] = {}
    for ref, call in calls.items():
        oldest.setdefault(id(call.handle), (ref, call))
    return {ref for ref, call in oldest.values() if loaded(call)}


def take_batch(queue: deque[Queued], batch_frames: int, flushing: bool,
               ) -> list[tuple[Any, list[WorkUnit]]]:
    """Parts for one inference call from a pool's queue: at least `batch_frames`
    frames, or what is queued when `flushing` (the end of the run, or a full
    buffer); [] when the pool should wait for more."""
    if not queue or (sum(n for _, _, n in queue) < batch_frames and not flushing):
        return []
    parts: list[tuple[Any, list[WorkUnit]]] = []
    frames = 0
    while queue and (frames < batch_frames or not parts):
        payload, units, n = queue.popleft()
        parts.append((payload, units))
        frames += n
    return parts
