"""The bottleneck verdict: one line naming what limited a run, from measured
busy and wait times (docs/observability.md shows it on a decode-bound and a
model-bound run).

With decode workers and model actors in different processes (the default
shape) the driver measures the steady state, after every model has loaded:
model actors idle with no call (they wait for frames: decode-bound), or
decode held back by a full frame buffer (it waits for the models:
model-bound). Where stages share a process (`--decode in-actor`, the
sequential engine) the stage with the most busy time is the bottleneck.
"""

from __future__ import annotations

from pipeline.observe.run_totals import StageTotal
from pipeline.observe.stage_meter import WaitTotals

WAITING = 0.25  # a share of the steady window a stage spends waiting to count as starved
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
        return _pipelined(busy, waits)
    return _busiest(totals, mode, models)


def _pipelined(busy: dict[tuple[str, str | None], float], waits: WaitTotals) -> str:
    idle = {name: waits.pool_idle_s.get(name, 0.0) / ready
            for name, ready in waits.pool_ready_s.items() if ready > 0}
    busiest = min(idle, key=idle.__getitem__)  # the pool that waits least
    least_idle = idle[busiest]
    blocked = waits.decode_blocked_s / waits.window_s
    starved = waits.decode_starved_s / waits.window_s
    if blocked >= WAITING and least_idle < WAITING:
        return (f"model-bound ({busiest}): decode held back by a full frame buffer "
                f"{blocked:.0%} of the time, the model actors busy {1 - least_idle:.0%}; add "
                "model actors (--inference-actors) or GPUs, or use a lighter model")
    if least_idle < WAITING:
        return (f"balanced: model actors idle {least_idle:.0%}, decode held back "
                f"{blocked:.0%} of the time")
    actors = f"model actors idle {least_idle:.0%} of the time"
    if starved >= WAITING:
        return (f"probe-bound: {actors}, decode workers waiting for probed videos "
                f"{starved:.0%}; many short videos? each is probed (listing and header "
                "reads) before its frames are decoded")
    fetch, decode = busy.get(("fetch", None), 0.0), busy.get(("decode", None), 0.0)
    if fetch > decode:
        return (f"fetch-bound: {actors}; decode workers spent more time fetching from storage "
                f"({fetch:.0f}s) than decoding ({decode:.0f}s); bring compute closer to the data")
    return f"decode-bound: {actors}; add decode CPUs (--decode-workers) or use --decode in-actor"


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
