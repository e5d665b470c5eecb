"""One `vidlake label` run: validate, list, plan, execute, commit, record.

Follow one unit (docs/design.md walks it through the code): `resolve_analyses`
turns flags into analyses; `iter_corpus` lists a VideoRef (a ListingFeed reads
pages ahead in a thread); `plan_videos` says what the lake lacks, as the
listing streams in; the engine pulls the videos to do from the
StreamingPlanner as it has room, probes them (a VideoInfo), pulls WorkUnits
from it, decodes each unit once (`decode_stage`, which also runs
shots), runs every model analysis on its frames (`model_stage`) and yields
each unit's BatchResult. The loop here hands each result, after what
planning learnt before it, to the LakeCommitter, which commits rows, video
rows and status events. Control flows one way: nothing the engine or the
committer calls reaches back into this module.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial

import pyarrow as pa

from pipeline import __version__
from pipeline.analyses.base import Analysis
from pipeline.analyses.model_loader import UNTRAINED_VERSION
from pipeline.analyses.resolve import ResolvedAnalysis, resolve_analyses
from pipeline.config import LabelConfig
from pipeline.corpus.listing import iter_corpus
from pipeline.corpus.manifest import is_manifest
from pipeline.decode.gpu_environment import gpu_decode_problem
from pipeline.errors import ConfigError, LakeBusy, RunFailed, RunInterrupted, StorageError
from pipeline.lake.lake_lock import LakeLock
from pipeline.lake.lake_state import LakeState
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import RUN_STAGES, RUNS
from pipeline.observe.run_totals import RunCost, StageTotal, run_cost, stage_totals
from pipeline.observe.stage_meter import StageMeter
from pipeline.observe.verdict import bottleneck
from pipeline.observe.work_times import Stopwatch, elapsed_since
from pipeline.runner.committer import LakeCommitter, RunCounts
from pipeline.runner.engine import Engine
from pipeline.runner.engine_start import EngineFactory, StartedEngine, start_engine
from pipeline.runner.interrupts import InterruptWatch
from pipeline.runner.listing_feed import ListingFeed
from pipeline.runner.progress import ProgressReporter
from pipeline.runner.run_outputs import RunOutputs
from pipeline.runner.streaming_planner import StreamingPlanner
from pipeline.runner.work_plan import VideoWork, WorkPlan, plan_videos, work_line
from pipeline.storage import canonical_uri, fs_path, is_remote

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """What a run did; printed by the CLI and stored in `runs`. Made once, at
    the end (`_summary`)."""

    run_id: str
    videos: int
    units_total: int
    units_skipped: int
    counts: RunCounts
    wall_s: float
    status: str = "completed"
    steady_frames_per_s: float = 0.0
    plan: WorkPlan | None = None
    compacted: int = 0  # small files merged away by the compaction after the run
    stages: tuple[StageTotal, ...] = ()  # where the time went (summed run_stages rows)
    cost: RunCost | None = None
    bottleneck: str = ""  # the verdict line (pipeline/observe/verdict.py)

    @property
    def frames_per_s(self) -> float:
        return self.counts.frames / self.wall_s if self.wall_s > 0 else 0.0


def code_version() -> str:
    """`vidlake <version>`, plus the git commit when running from a checkout."""
    import subprocess
    from pathlib import Path

    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], text=True,
                                cwd=Path(__file__).resolve().parent, capture_output=True,
                                timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"vidlake {__version__}" + (f" ({commit})" if commit else "")


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass
class RunSetup:
    """What a run knows before it takes the lake's lock: its analyses and keys."""

    config: LabelConfig
    resolved: list[ResolvedAnalysis]
    outputs: RunOutputs
    lake: ParquetLake


def check_run(config: LabelConfig, *,
              check_writable: bool = True) -> tuple[list[ResolvedAnalysis], ParquetLake]:
    """Check that GPU decode can work (when asked for), resolve the analyses and
    check the output; raises ConfigError or StorageError (systemic, before any
    work)."""
    if (problem := gpu_decode_problem(config.execution)) is not None:
        raise ConfigError(problem)
    resolved = resolve_analyses(config)
    refuse_lake_in_source(config.source, config.output)
    lake = ParquetLake(config.output, config.storage)
    if check_writable:
        lake.check_writable()
    for item in resolved:
        if item.version == UNTRAINED_VERSION:
            log.warning("%s: no weights: %s runs with untrained random weights (labels are "
                        "meaningless; use this only to measure speed)", item.name, item.arch)
    return resolved, lake


def setup_run(config: LabelConfig, *, check_writable: bool = True) -> RunSetup:
    """`check_run`, with the run's outputs (tables and analysis keys)."""
    resolved, lake = check_run(config, check_writable=check_writable)
    return RunSetup(config, resolved, RunOutputs.of(resolved), lake)


def listing_feed(config: LabelConfig, meter: StageMeter | None = None) -> ListingFeed:
    """SOURCE's listing, read ahead in a thread (each page charged to `meter`'s
    list stage); its errors (StorageError: unreachable, missing) come out of
    the iteration."""
    def on_page(videos: int, seconds: float) -> None:
        if meter is not None:
            meter.add("list", items_out=videos, busy_s=seconds)

    return ListingFeed(partial(iter_corpus, config.source, config.storage), config.source,
                       on_page=on_page)


def refuse_lake_in_source(source: str, output: str) -> None:
    """ConfigError when the lake would be SOURCE or lie inside it: its files would
    be listed as input by the next run if it ever held videos (an export, a
    copy), and a run's own output would change the corpus it lists."""
    if is_manifest(source):
        return
    inner, outer = _path_key(output), _path_key(source)
    if inner == outer or inner.startswith(outer.rstrip("/") + "/"):
        raise ConfigError(f"--output {output!r} is inside SOURCE {source!r}; put the lake "
                          "somewhere SOURCE does not list")


def _path_key(uri: str) -> str:
    """A comparable form of a URI: scheme-less bucket/key for object storage,
    a resolved absolute path (symlinks followed) for local paths."""
    if is_remote(uri):
        return fs_path(canonical_uri(uri)).rstrip("/")
    return os.path.realpath(canonical_uri(uri))


def plan_stream(setup: RunSetup, state: LakeState, listing: ListingFeed,
                plan: WorkPlan) -> Iterator[VideoWork]:
    """The videos to do, as the listing streams in (`plan` counts the rest):
    what `--dry-run` prints and the run then does."""
    policy = setup.config.policy
    return plan_videos(listing, setup.outputs, state, plan, max_attempts=policy.max_attempts,
                       retry_failed=policy.retry_failed)


def dry_run(config: LabelConfig, on_line: Callable[[str], None]) -> WorkPlan:
    """The plan of a run, reading the lake only (no lock, no recovery, no
    writes): a line per video to do goes to `on_line` as the listing streams
    in; the plan holds the counts and the quarantined videos."""
    setup = setup_run(config, check_writable=False)
    plan = WorkPlan()
    with listing_feed(config) as listing:
        for work in plan_stream(setup, setup.lake.state(), listing, plan):
            on_line(work_line(work, setup.outputs))
    return plan


def engine_named(name: str) -> EngineFactory:
    """The engine `--engine NAME` means (imported only when chosen)."""
    if name == "sequential":
        from pipeline.runner.sequential import SequentialEngine

        return lambda config, analyses, settings: SequentialEngine(
            settings, analyses, config.storage)
    from pipeline.runner.ray_engine import RayEngine

    return RayEngine


def run_label(config: LabelConfig, engine_factory: EngineFactory | None = None) -> RunSummary:
    """Run one labelling pass under the lake's lock. Systemic problems raise
    before anything is written; LakeBusy when another run holds the lake.

    The driver never imports torch: planning needs only the weights' content
    hash, and the model is validated where it loads (the engine's actors)
    while the driver lists, plans and probes and decoding begins. Bad weights
    still fail the run before its first commit. Listing streams: a thread
    lists pages ahead while the run plans, probes and decodes the first ones.
    A lake with no commit yet cannot make the run a no-op, so its engine
    starts at once, while the listing begins (engine_start.py); otherwise the
    engine starts with the first video to do, and a run with nothing to do
    starts none.
    """
    engine_factory = engine_factory or engine_named(config.execution.engine)
    started_at = datetime.now(timezone.utc)
    t0 = time.monotonic()
    meter = StageMeter(new_run_id())
    setup = setup_run(config)
    policy = config.policy
    # The lock first: a busy lake is refused before Ray or a model starts.
    with LakeLock(config.output, config.storage, run_id=meter.run_id, purpose=policy.command,
                  ttl_s=policy.lock_ttl_s, wait_s=policy.lock_wait_s) as lock, \
            listing_feed(config, meter) as listing:
        started = (None if setup.lake.has_commits()
                   else start_engine(config, setup.resolved, engine_factory))
        try:
            return _locked_run(setup, listing, started, engine_factory, lock, meter,
                               started_at, t0)
        finally:
            if started is not None:
                started.close()  # when the plan stopped the run before it ran


def _locked_run(setup: RunSetup, listing: ListingFeed, started: StartedEngine | None,
                engine_factory: EngineFactory, lock: LakeLock, meter: StageMeter,
                started_at: datetime, t0: float) -> RunSummary:
    """Plan under the lake's lock, as `listing` streams in, and run the plan
    with the engine (`started` already, or started at the first video to do)."""
    policy, run_id = setup.config.policy, meter.run_id
    found = setup.lake.log()  # read once: recovery never changes the log
    setup.lake.recover(found)
    state = found.state()
    plan = WorkPlan()
    work = plan_stream(setup, state, listing, plan)
    first = next(work, None)  # a no-op reads the whole listing here, holding none of it
    if first is not None:
        run = started or start_engine(setup.config, setup.resolved, engine_factory)
        summary = _run_plan(setup, itertools.chain([first], work), plan, listing, state, run,
                            lock, meter, started_at, t0, len(found.tail))
    else:
        if started is not None:
            started.close()  # its actors are killed, not waited for
        summary = _measured(RunSummary(run_id, 0, 0, 0, RunCounts(),
                                       time.monotonic() - t0, plan=plan), meter)
        if policy.record_idle:
            _record_run(_committer(setup, run_id, state, lock, lambda: {}), setup,
                        summary, started_at, meter.rows)
    log.info("run %s: %d videos listed: %s", run_id, plan.listed, plan.summary())
    if policy.compact_files and summary.status == "completed":
        summary = dataclasses.replace(summary, compacted=_compact(setup, lock))
    setup.lake.checkpoint_if_due(policy.checkpoint_every, before_write=lock.check)
    return summary


def _committer(setup: RunSetup, run_id: str, state: LakeState, lock: LakeLock,
               models: Callable[[], dict[str, str]],
               analyses: list[Analysis] | None = None, uncheckpointed: int = 0,
               ) -> LakeCommitter:
    policy = setup.config.policy
    return LakeCommitter(setup.lake, run_id=run_id, outputs=setup.outputs,
                         analyses=analyses or [], models=models, attempts=state.attempts,
                         # only relabel retries, so only relabel quarantines
                         max_attempts=(policy.max_attempts
                                       if policy.command == "relabel" else 0),
                         before_commit=lock.check,
                         checkpoint_every=policy.checkpoint_every,
                         uncheckpointed=uncheckpointed)


@dataclass
class _Tally:
    """What the run loop learns as it goes (made into the RunSummary at the end)."""

    status: str = "failed"  # until the run gets through
    units_total: int = 0
    units_skipped: int = 0
    steady_frames_per_s: float = 0.0


def _run_plan(setup: RunSetup, work: Iterator[VideoWork], plan: WorkPlan, listing: ListingFeed,
              state: LakeState, run: StartedEngine, lock: LakeLock, meter: StageMeter,
              started_at: datetime, t0: float, uncheckpointed: int) -> RunSummary:
    """Do `work` (as it streams in; `plan` counts it) with the started engine
    `run` (closed here); records the run (unless a systemic problem stopped
    it before any commit) and returns what it did; `uncheckpointed`: commits
    not in a checkpoint before it."""
    engine = run.engine
    loading = Stopwatch()  # a commit waiting for the models to load is start-up, not commit

    def model_names() -> dict[str, str]:
        with loading:
            infos = engine.model_infos()
        loaded = {name: info.arch for name, info in infos.items()}
        return {r.name: loaded.get(r.name, r.arch) for r in setup.resolved}

    run_id = meter.run_id
    committer = _committer(setup, run_id, state, lock, model_names, run.analyses,
                           uncheckpointed)
    committer.pending_models({r.name: r.arch for r in setup.resolved})
    tally = _Tally()
    systemic = False
    try:
        _execute(engine, setup, state, work, plan, listing, committer, tally, meter, loading)
        _metered_commit(meter, committer, committer.flush, loading, units=0, frames=0)
        tally.status = "completed"
    except (ConfigError, StorageError, LakeBusy) as exc:
        systemic = committer.commits == 0  # found before any work: nothing to record
        if not systemic:
            raise RunFailed(f"run {run_id} failed part-way: {exc}") from exc
        raise
    except KeyboardInterrupt:
        tally.status = "interrupted"
        raise RunInterrupted(_interrupted(run_id, committer.counts)) from None
    finally:
        run.close()
        summary = _measured(RunSummary(run_id, plan.to_process, tally.units_total,
                                       tally.units_skipped, committer.counts,
                                       time.monotonic() - t0, tally.status,
                                       tally.steady_frames_per_s, plan), meter)
        if not systemic:
            _record_run(committer, setup, summary, started_at, meter.rows)
    return summary


def _measured(summary: RunSummary, meter: StageMeter) -> RunSummary:
    """`summary` with the meter's totals, cost figures and verdict (closes the meter)."""
    totals = stage_totals(meter.close(), summary.wall_s)
    cost = run_cost(summary.counts.video_s, summary.wall_s, meter.cpus, meter.gpus)
    verdict = (bottleneck(totals, meter.waits, meter.mode, summary.wall_s, meter.models)
               if summary.videos else "")  # a run with nothing to do has no bottleneck
    return dataclasses.replace(summary, stages=tuple(totals), cost=cost, bottleneck=verdict)


def _metered_commit(meter: StageMeter, committer: LakeCommitter, call: Callable[[], None],
                    loading: Stopwatch, *, units: int, frames: int) -> None:
    """Run `call` (adding results, flushing) and charge it to the commit stage,
    less the time it waited for the models to load (`loading`)."""
    began, before = time.perf_counter(), (committer.counts.units, committer.counts.frames)
    waited = loading.total
    call()
    busy = max(elapsed_since(began) - (loading.total - waited), 0.0)
    meter.add("commit", items_in=units, frames_in=frames, busy_s=busy,
              items_out=committer.counts.units - before[0],
              frames_out=committer.counts.frames - before[1])


def _interrupted(run_id: str, counts: RunCounts) -> str:
    """What an interrupted run committed, and how to go on."""
    done = (f"{counts.units} units and {counts.videos_ok + counts.videos_failed} videos were "
            "committed" if counts.units else "nothing was committed")
    return (f"interrupted: run {run_id} stopped; {done}; run the same command to continue "
            "from there")


def _compact(setup: RunSetup, lock: LakeLock) -> int:
    """Compact partitions that gathered `compact_files` small files (the run's
    lock covers it); returns the files merged away."""
    from pipeline.lake.compaction import compact_lake

    policy = setup.config.policy
    result = compact_lake(setup.lake, target_bytes=policy.compact_target_mb << 20,
                          min_files=policy.compact_files, before_commit=lock.check)
    return result.files_removed


def _execute(engine: Engine, setup: RunSetup, state: LakeState, work: Iterator[VideoWork],
             plan: WorkPlan, listing: ListingFeed, committer: LakeCommitter, tally: _Tally,
             meter: StageMeter, loading: Stopwatch) -> None:
    """The run loop, flowing one way: the engine pulls videos and units from
    the planner and yields results; each result, after what planning learnt
    before it, goes to the committer."""
    planner = StreamingPlanner(setup.config, setup.resolved, setup.outputs, state, work)
    with ProgressReporter() as progress, InterruptWatch() as watch:
        for result in engine.run(planner.refs(), planner, meter):
            watch.check()  # a Ctrl-C a destructor swallowed stops the run here
            committer.learn(planner.events())
            planner.observe(result)
            _metered_commit(meter, committer, partial(committer.add, result), loading,
                            units=len(result.outcomes), frames=result.frames)
            progress.planned(planner.units_planned,
                             complete=(listing.finished
                                       and planner.videos_planned == plan.to_process))
            progress.update(len(result.outcomes), result.frames)
        watch.check()
        committer.learn(planner.events())
    tally.units_total, tally.units_skipped = planner.units_total, planner.units_skipped
    tally.steady_frames_per_s = progress.steady_frames_per_s
    log.info("planned %d units (%d already committed)", planner.units_total,
             planner.units_skipped)


def _record_run(committer: LakeCommitter, setup: RunSetup, summary: RunSummary,
                started_at: datetime, stage_rows: list[dict[str, object]]) -> None:
    # the analyses as resolved (defaults filled in), not as typed
    config = dataclasses.replace(setup.config, analyses=tuple(r.spec for r in setup.resolved))
    counts = summary.counts
    row = {
        "run_id": summary.run_id, "started_at": started_at,
        "finished_at": datetime.now(timezone.utc), "status": summary.status,
        "config": config.to_json(),
        "counts": {"videos": summary.videos, "videos_ok": counts.videos_ok,
                   "videos_failed": counts.videos_failed, "units": counts.units,
                   "units_failed": counts.units_failed, "units_skipped": summary.units_skipped,
                   "frames": counts.frames},
        "wall_s": summary.wall_s, "frames_per_s": summary.frames_per_s,
        "code_version": code_version(),
        "outputs": [{"table": o.table, "analysis": o.kind, "model": o.arch,
                     "model_version": o.version, "analysis_key": o.key} for o in setup.outputs],
        "stages": [t.record() for t in summary.stages],
        "bottleneck": summary.bottleneck or None,
        **_cost_columns(summary.cost),
    }
    tables = {"runs": pa.Table.from_pylist([row], schema=RUNS)}
    if stage_rows:
        tables["run_stages"] = pa.Table.from_pylist(stage_rows, schema=RUN_STAGES)
    try:
        committer.commit_tables(tables)
    except (OSError, StorageError, LakeBusy) as exc:
        log.error("could not record run %s: %s", summary.run_id, exc)


def _cost_columns(cost: RunCost | None) -> dict[str, float | None]:
    if cost is None:
        return {}
    return {"video_hours": cost.video_hours, "cpu_hours": cost.cpu_hours,
            "gpu_hours": cost.gpu_hours,
            "video_hours_per_cpu_hour": cost.video_hours_per_cpu_hour,
            "video_hours_per_gpu_hour": cost.video_hours_per_gpu_hour}
