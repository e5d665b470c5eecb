"""One `vidlake label` run: validate, list, probe, plan, execute, commit, record.

Follow one unit: `list_corpus` gives a VideoRef; `engine.probe` a VideoInfo;
`plan_video` WorkUnits; the engine decodes (`decode_unit`) and analyses
(`FrameClassifier.process`) it into a BatchResult; `LakeCommitter` commits
its rows and, with its video's last unit, the `videos` row.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa

from pipeline import __version__
from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.analyses.frame_model import weights_version
from pipeline.config import LabelConfig
from pipeline.corpus.listing import list_corpus
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.errors import ConfigError, StorageError
from pipeline.lake.parquet_lake import LakeState, ParquetLake
from pipeline.lake.schemas import RUNS
from pipeline.models.frame_cnn import check_arch
from pipeline.plan.planner import analysis_key, plan_video
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import BatchResult
from pipeline.runner.committer import LakeCommitter, RunCounts
from pipeline.runner.engine import Engine
from pipeline.runner.progress import ProgressReporter

log = logging.getLogger(__name__)

EngineFactory = Callable[[LabelConfig, DecodeSettings], Engine]


@dataclass
class RunSummary:
    """What a run did; printed by the CLI and stored in `runs`."""

    run_id: str
    videos: int
    units_total: int
    units_skipped: int
    counts: RunCounts
    wall_s: float
    status: str = "completed"
    steady_frames_per_s: float = 0.0

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


def decode_settings(config: LabelConfig) -> DecodeSettings:
    return DecodeSettings(size=config.size, threads=config.execution.decoder_threads,
                          fault_tolerance=config.fault_tolerance,
                          prefer_gpu=config.execution.decode == "in-actor",
                          storage=config.storage,
                          decoder_path=config.execution.decoder_path)


def classifier_for(config: LabelConfig, threads: int | None = None) -> FrameClassifier:
    return FrameClassifier(config.model, micro_batch=config.execution.batch_frames,
                           storage=config.storage, threads=threads)


class StreamingPlanner:
    """Turns probe results into units as they arrive, so decoding starts with the
    first probed videos instead of after the whole corpus is probed."""

    def __init__(self, config: LabelConfig, key: str, state: LakeState,
                 committer: LakeCommitter, progress: ProgressReporter) -> None:
        self.config = config
        self.key = key
        self.done = state.unit_outcomes
        self.committer = committer
        self.progress = progress
        self.units_total = 0
        self.units_skipped = 0

    def __call__(self, infos: list[VideoInfo]) -> list[WorkUnit]:
        """Register `infos` with the committer; return the units still to run."""
        todo: list[WorkUnit] = []
        for info in infos:
            units = plan_video(info, self.config.sample,
                               self.config.execution.max_frames_per_unit, self.key)
            earlier = [self.done[u.unit_id] for u in units if u.unit_id in self.done]
            self.committer.expect(info, len(units), earlier)
            fresh = [u for u in units if u.unit_id not in self.done]
            self.units_total += len(units)
            self.units_skipped += len(units) - len(fresh)
            todo.extend(fresh)
        self.progress.total += len(todo)
        return todo


def run_label(config: LabelConfig, engine_factory: EngineFactory) -> RunSummary:
    """Run one labelling pass. Systemic problems raise before anything is written.

    The driver never imports torch: planning needs only the weights' content
    hash, and the model is validated where it loads (the engine's actors)
    while Ray starts, probes run and decoding begins. Bad weights still fail
    the run before its first commit.
    """
    started_at = datetime.now(timezone.utc)
    t0 = time.monotonic()
    run_id = new_run_id()
    check_arch_flag(config)
    lake = ParquetLake(config.output, config.storage)
    lake.check_writable()
    refs = list_corpus(config.source, config.storage)
    version = weights_version(config.model, config.storage)
    if not config.model.weights_uri:
        log.warning("no --weights: the model runs with untrained random weights (labels are "
                    "meaningless; use this only to measure speed)")
    lake.recover()
    state = lake.state()
    key = analysis_key(config, version)
    pending = [r for r in refs if f"{r.content_key}:{key}" not in state.videos_done]
    log.info("run %s: %d videos listed, %d already done", run_id, len(refs),
             len(refs) - len(pending))
    summary = RunSummary(run_id, len(pending), 0, 0, RunCounts(), 0.0)
    if not pending:
        summary.wall_s = time.monotonic() - t0
        return summary
    engine = engine_factory(config, decode_settings(config))
    log.info("engine %s started", engine.name)
    committer = LakeCommitter(lake, run_id=run_id, analysis_key=key,
                              model=lambda: engine.model_info().arch, model_version=version)
    summary.counts = committer.counts
    systemic = False
    summary.status = "failed"  # until the run gets through; any exception propagates
    try:
        engine.start_analysis()
        _execute(engine, pending, config, key, state, committer, summary)
        committer.flush()
        summary.status = "completed"
    except (ConfigError, StorageError):
        systemic = committer.commits == 0  # found before any work: nothing to record
        raise
    finally:
        engine.close()
        summary.wall_s = time.monotonic() - t0
        if not systemic:
            _record_run(committer, config, summary, started_at)
    return summary


def check_arch_flag(config: LabelConfig) -> None:
    """An unknown --model fails at once, before weights are even read."""
    if config.model.name != "auto":
        check_arch(config.model.name)


def _execute(engine: Engine, pending: list[VideoRef], config: LabelConfig, key: str,
             state: LakeState, committer: LakeCommitter, summary: RunSummary) -> None:
    progress = ProgressReporter(0)
    planner = StreamingPlanner(config, key, state, committer, progress)

    def sink(result: BatchResult) -> None:
        committer.add(result)
        progress.update(len(result.outcomes), result.frames)

    engine.run(pending, planner, sink)
    summary.units_total = planner.units_total
    summary.units_skipped = planner.units_skipped
    summary.steady_frames_per_s = progress.steady_frames_per_s
    log.info("planned %d units (%d already committed)", summary.units_total,
             summary.units_skipped)


def _record_run(committer: LakeCommitter, config: LabelConfig, summary: RunSummary,
                started_at: datetime) -> None:
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
    }
    try:
        committer.commit_table("runs", pa.Table.from_pylist([row], schema=RUNS))
    except OSError as exc:
        log.error("could not record run %s: %s", summary.run_id, exc)
