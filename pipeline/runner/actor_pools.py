"""The model actors of a run, one pool per model analysis (or one in-actor pool):
created, watched for their models loading, replaced when they die or hang,
and killed at the end."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayTaskError

from pipeline.analyses.base import Analysis
from pipeline.analyses.model_loader import ModelInfo
from pipeline.errors import ConfigError, StorageError
from pipeline.runner.ray_tasks import InferenceActor
from pipeline.runner.scheduling import MAX_ACTOR_RESTARTS, PoolPlan, Queued

log = logging.getLogger(__name__)


@dataclass
class Pool:
    """A pool's plan, its actors (and their ready() refs), and the decoded units
    queued for it."""

    plan: PoolPlan
    actors: list[Any] = field(default_factory=list)
    ready: list[Any] = field(default_factory=list)
    queue: deque[Queued] = field(default_factory=deque)

    @property
    def names(self) -> list[str]:
        return self.plan.names


class ActorPools:
    """The actors of every pool."""

    def __init__(self, plans: list[PoolPlan], models: list[Analysis]) -> None:
        self.pools = [Pool(plan) for plan in plans]
        self.models = models
        self._infos: dict[str, ModelInfo] | None = None
        self._analyses_refs: dict[int, Any] = {}  # pool -> its analyses in the object store
        self._deaths = 0
        self._loaded: set[tuple[int, int]] = set()  # (pool, index) of actors known loaded

    def start(self) -> None:
        """Create the actors now; they load their models while the driver probes."""
        for index, pool in enumerate(self.pools):
            pool.actors = [self._new_actor(index) for _ in range(pool.plan.n_actors)]
            pool.ready = [actor.ready.remote() for actor in pool.actors]

    @property
    def known(self) -> bool:
        """Whether model_infos() has been read."""
        return self._infos is not None

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
        """Whether the actor has loaded its models (remembered once true)."""
        if (pool, index) in self._loaded:
            return True
        done, _ = ray.wait([self.pools[pool].ready[index]], timeout=0, fetch_local=False)
        if done:
            self._loaded.add((pool, index))
        return bool(done)

    def _new_actor(self, pool: int) -> Any:
        """An actor holding the pool's analyses. They reach it through the object
        store, put once per pool: passed inline they would be part of the actor's
        creation spec, which Ray keeps in its actor table, storage credentials and all."""
        if pool not in self._analyses_refs:
            names = set(self.pools[pool].names)
            self._analyses_refs[pool] = ray.put([a for a in self.models if a.name in names])
        options = self.pools[pool].plan.options
        return ray.remote(InferenceActor).options(**options).remote(self._analyses_refs[pool])

    def replace(self, pool: int, index: int, reason: str) -> None:
        """Kill and recreate an actor; a model that cannot even start is systemic."""
        self._deaths += 1
        if self._deaths > MAX_ACTOR_RESTARTS:
            raise RuntimeError(f"inference actors died {self._deaths} times; last: {reason}")
        log.warning("restarting inference actor %d of pool %d: %s", index, pool, reason)
        actors = self.pools[pool].actors
        ray.kill(actors[index], no_restart=True)
        actors[index] = self._new_actor(pool)
        self.pools[pool].ready[index] = actors[index].ready.remote()
        self._loaded.discard((pool, index))

    def close(self) -> None:
        for pool in self.pools:
            for actor in pool.actors:
                ray.kill(actor, no_restart=True)
            pool.actors = []
