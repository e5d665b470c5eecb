"""The bottleneck verdict: one line naming what limited a run, from measured
busy and wait times (docs/observability.md shows it on a decode-bound and a
model-bound run).

With decode workers and model actors in different processes (the default
shape) the verdict looks at the steady state, after every model has loaded:
the busy seconds the model actors measured inside their analyses against
the actor-seconds they were loaded. Actors that are busy most of that time
are the limit (model-bound; decode then waits on a full frame buffer);
actors idle a good share of it wait for frames (decode-bound, or what
decode waits for: probes, storage). Where stages share a process (`--decode
in-actor`, the sequential engine) the stage with the most busy time is the
bottleneck.
"""

from __future__ import annotations

from pipeline.observe.run_totals import StageTotal
from pipeline.observe.stage_meter import WaitTotals

WAITING = 0.25  # a share of the steady window a stage spends waiting to count as starved
STEADY_SHARE = 1 / 3  # of the wall time with every model loaded, below which start-up ruled
COMMIT_SHARE = 0.3  # of the wall time spent committing: the driver's writes are the limit


def bottleneck(totals: list[StageTotal], waits: WaitTotals, mode: str, wall_s: float,
               models: frozenset[str] = frozenset()) -> str:
    """The verdict line, e.g. `decode-bound: model actors idle 63% of the time;
    add decode CPUs (--decode-workers) or use --decode in-actor`."""
    busy = {(t.stage, t.analysis): t.busy_s for t in totals}
    if sum(busy.values()) <= 0:
        return "nothing measured: no unit was decoded"
    commit = busy.get(("commit", None), 0.0)
    if wall_s > 0 and commit / wall_s >= COMMIT_SHARE:
        return (f"commit-bound: the driver spent {commit / wall_s:.0%} of the run writing the "
                "lake; check the storage's latency (a local folder or a nearby bucket)")
    if mode == "pipelined" and waits.window_s > 0 and any(waits.pool_ready_s.values()):
        if waits.window_s < STEADY_SHARE * wall_s:
            return (f"start-up-bound: the model actors were ready for {waits.window_s:.0f}s "
                    f"of the {wall_s:.0f}s run; a warm cluster (ray start, then --address "
                    "auto) or a bigger job amortises start-up")
        return _pipelined(busy, waits)
    return _busiest(totals, mode, models)


def _pipelined(busy: dict[tuple[str, str | None], float], waits: WaitTotals) -> str:
    """Separate decode and model processes: the busiest model pool is the
    limit when its actors have no idle share to speak of; otherwise the models
    wait for frames, and what decode waits for (probes, storage) or decoding
    itself is."""
    steady = waits.busy_s
    utilisation = {name: min(steady.get(("analysis", name), 0.0) / ready, 1.0)
                   for name, ready in waits.pool_ready_s.items() if ready > 0}
    busiest = max(utilisation, key=utilisation.__getitem__)
    idle = 1 - utilisation[busiest]
    blocked = waits.decode_blocked_s / waits.window_s
    decode_use = (min(steady.get(("decode", None), 0.0) / waits.decode_slot_s, 1.0)
                  if waits.decode_slot_s > 0 else 0.0)
    if idle < WAITING:
        if blocked < WAITING and decode_use >= 1 - WAITING:
            return (f"balanced: model actors busy {1 - idle:.0%}, decode workers busy "
                    f"{decode_use:.0%}; add both, in this proportion")
        return (f"model-bound ({busiest}): model actors busy {1 - idle:.0%} of the time, "
                f"decode held back by a full frame buffer {blocked:.0%}; add model actors "
                "(--inference-actors) or GPUs, or use a lighter model")
    actors = f"model actors idle {idle:.0%} of the time"
    starved = waits.decode_starved_s / waits.window_s
    if starved >= WAITING:
        return (f"probe-bound: {actors}, decode workers waiting for probed videos "
                f"{starved:.0%}; many short videos? each is probed (listing and header "
                "reads) before its frames are decoded")
    fetch, decode = busy.get(("fetch", None), 0.0), busy.get(("decode", None), 0.0)
    if fetch > decode:
        return (f"fetch-bound: {actors}; decode workers spent more time fetching from storage "
                f"({fetch:.0f}s) than decoding ({decode:.0f}s); bring compute closer to the data")
    return (f"decode-bound: {actors} (decode workers busy {decode_use:.0%}); add decode CPUs "
            "(--decode-workers) or use --decode in-actor")


def _busiest(totals: list[StageTotal], mode: str, models: frozenset[str]) -> str:
    """Stages sharing processes: the one with the most busy seconds (`models`:
    the analyses that run a model; the others run next to decoding)."""
    work = [t for t in totals if t.stage in ("fetch", "decode", "analysis") and t.busy_s > 0]
    if not work:
        return "nothing measured: no unit was decoded"
    total = sum(t.busy_s for t in work)
    top = max(work, key=lambda t: t.busy_s)
    share = f"{top.busy_s / total:.0%} of the work time"
    where = ("; stages run one after another in the sequential engine" if mode == "sequential"
             else "; the actors decode and run the models in one process (--decode in-actor)"
             if mode == "in-actor" else "")
    if top.stage == "analysis":
        kind = "model" if top.analysis in models else "analysis"
        return f"{kind}-bound ({top.analysis}): {share} went to {top.analysis}{where}"
    return f"{top.stage}-bound: {share} went to {top.stage}{where}"
