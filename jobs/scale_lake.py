"""The lakes the scale benchmark measures: placeholder videos as SOURCE, and a
lake of that many videos written through the real ParquetLake.commit, as the
committer writes it (jobs/scale_benchmark.py measures the commands over it).
"""

from __future__ import annotations

import csv
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.config import RunPolicy
from pipeline.corpus.video_ref import VideoRef
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.lake_state import marker
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import FRAME_LABELS, RUN_STAGES, RUNS, STATUS_LOG, VIDEOS
from pipeline.runner.run_outputs import RunOutput, RunOutputs

COMMIT_VIDEOS = 256  # the committer's max_units; one unit per video here
FOLDER_FILES = 1000  # placeholder videos per source folder
MODEL = "mobilenet_v3_small"
SAMPLE = "uniform:8"
SIZE = "112"
# The relabel every size is measured with: the analysis the lake was written by.
ANALYSIS_FLAGS = ("--model", MODEL, "--sample", SAMPLE, "--size", SIZE,
                  "--engine", "sequential")
N_FRAMES, FPS, WIDTH, HEIGHT = 250, 25.0, 320, 240  # what each placeholder "was"
LABELS = tuple(f"class_{i}" for i in range(1000))
TOP_K = 5
FIRST_RUN = datetime(2025, 1, 1, tzinfo=timezone.utc)


# -- the source ---------------------------------------------------------------------
def placeholder_uris(root: str, count: int) -> list[str]:
    """Uris of `count` placeholder videos under `root`, FOLDER_FILES a folder."""
    return [f"{root.rstrip('/')}/g{i // FOLDER_FILES:05d}/v{i:08d}.mp4" for i in range(count)]


def write_placeholders(uris: list[str]) -> None:
    """Create the placeholder videos: empty files, or empty objects on S3."""
    from pipeline.storage import filesystem, fs_path, is_remote

    if not uris:
        return
    if is_remote(uris[0]):
        fs = filesystem(uris[0])
        for start in range(0, len(uris), 2000):
            fs.pipe({fs_path(u): b"" for u in uris[start:start + 2000]})
        return
    for folder in sorted({os.path.dirname(u) for u in uris}):
        os.makedirs(folder, exist_ok=True)
    for uri in uris:
        with open(uri, "wb"):
            pass


def write_manifest(path: Path, uris: list[str]) -> None:
    """A CSV manifest (one `uri` column) naming `uris`."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri"])
        writer.writerows([u] for u in uris)


# -- the lake ---------------------------------------------------------------------------
def relabel_argv(source: str, lake: str) -> list[str]:
    """The relabel arguments every measurement uses (and the synthesis resolves)."""
    return [source, "--output", lake, *ANALYSIS_FLAGS]


def frame_output(source: str, lake: str) -> tuple[RunOutput, Any]:
    """The frame_labels output the relabel resolves (its analysis_key, model
    version) and its LabelConfig, resolved as the planner resolves them."""
    from jobs.relabel import parse_args, policy_from_args
    from pipeline.analyses.resolve import resolve_analyses
    from pipeline.cli.label_options import label_config_from_args

    args = parse_args(relabel_argv(source, lake))
    config = label_config_from_args(args, policy_from_args(args))
    outputs = list(RunOutputs.of(resolve_analyses(config)))
    if [o.table for o in outputs] != ["frame_labels"]:
        raise RuntimeError(f"expected one frame_labels output, got {outputs}")
    return outputs[0], config


def frame_indices() -> list[int]:
    """The frames uniform:8 samples from a placeholder's N_FRAMES."""
    from pipeline.config import SampleSpec
    from pipeline.plan.sampling import sample_indices

    return [int(i) for i in sample_indices(SampleSpec.parse(SAMPLE), N_FRAMES, FPS)]


@dataclass
class SynthesisReport:
    videos: int
    runs: int
    commits: int
    seconds: float = 0.0


def _repeat(values: list[Any], times: int) -> list[Any]:
    return [v for v in values for _ in range(times)]


@dataclass
class _Writer:
    """Writes one lake's commits, run by run."""

    lake: ParquetLake
    output: RunOutput
    config_json: str
    frames: list[int]
    checkpoint_every: int  # as RunPolicy.checkpoint_every; 0: never (older lakes)
    commits: int = 0
    runs: int = 0
    uncheckpointed: int = 0

    def _committed(self) -> None:
        """Count a commit and checkpoint when due, as the committer does."""
        self.commits += 1
        self.uncheckpointed += 1
        if self.checkpoint_every and self.uncheckpointed >= self.checkpoint_every:
            self.lake.checkpoint()
            self.uncheckpointed = 0

    def _frame_labels(self, refs: list[VideoRef], run_id: str) -> pa.Table:
        n = len(self.frames)
        rows = len(refs) * n
        labels = [LABELS[i % len(LABELS)] for i in range(rows)]
        topk = [[LABELS[(i + j) % len(LABELS)] for j in range(TOP_K)] for i in range(TOP_K)]
        return pa.table({
            "uri": _repeat([r.uri for r in refs], n),
            "frame_index": self.frames * len(refs),
            "timestamp_s": [f / FPS for f in self.frames] * len(refs),
            "label": labels,
            "score": pa.array([0.5] * rows, pa.float32()),
            "topk_labels": [topk[i % TOP_K] for i in range(rows)],
            "topk_scores": pa.array([[0.5, 0.2, 0.1, 0.1, 0.1]] * rows,
                                    pa.list_(pa.float32())),
            "model": [MODEL] * rows, "model_version": [self.output.version] * rows,
            "run_id": [run_id] * rows,
            "content_key": _repeat([r.content_key for r in refs], n),
            "analysis_key": [self.output.key] * rows,
        }, schema=FRAME_LABELS)

    def _videos(self, refs: list[VideoRef], run_id: str) -> pa.Table:
        analysis = f"frame_labels:{MODEL}@{self.output.version}"
        return pa.Table.from_pylist([{
            "uri": r.uri, "size_bytes": r.size_bytes, "etag": r.etag, "status": "ok",
            "error": None, "decoder": "decord", "codec": "h264", "width": WIDTH,
            "height": HEIGHT, "fps": FPS, "n_frames": N_FRAMES, "duration_s": N_FRAMES / FPS,
            "rotation": 0, "n_sampled": len(self.frames), "analyses": [analysis],
            "model": MODEL, "model_version": self.output.version, "run_id": run_id,
            "content_key": r.content_key, "container": "mov,mp4,m4a,3gp,3g2,mj2",
        } for r in refs], schema=VIDEOS)

    def _status(self, refs: list[VideoRef], status: str, run_id: str,
                at: datetime) -> pa.Table:
        return pa.Table.from_pylist([{
            "uri": r.uri, "content_key": r.content_key, "size_bytes": r.size_bytes,
            "etag": r.etag, "analysis": "frame_labels", "model": MODEL,
            "model_version": self.output.version, "analysis_key": self.output.key,
            "status": status, "error": None, "attempts": 0, "run_id": run_id,
            "updated_at": at} for r in refs], schema=STATUS_LOG)

    def run(self, refs: list[VideoRef], started: datetime) -> None:
        """One run that processed `refs` (none: an idle run), committed as the
        committer commits: batches of COMMIT_VIDEOS, then the runs row."""
        from pipeline.plan.work_unit import unit_id_for

        run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        key = self.output.key
        start, end = self.frames[0], self.frames[-1] + 1
        at = started
        seq = 0
        for seq, first in enumerate(range(0, len(refs), COMMIT_VIDEOS)):
            batch = refs[first:first + COMMIT_VIDEOS]
            at = started + timedelta(seconds=5 * (seq + 1))
            record = CommitRecord(
                commit_id=f"{run_id}-{seq:05d}", run_id=run_id,
                units={unit_id_for(r, key, start, end): UnitOutcome(
                    video_key=r.content_key, status="ok", error=None, decoder="decord",
                    decoder_n_frames=N_FRAMES, frames=len(self.frames)) for r in batch},
                videos_done=[marker(r.content_key, key) for r in batch],
                uris={r.content_key: r.uri for r in batch})
            status = self._status(batch, "done", run_id, at)
            if seq == 0:  # the run's pending events go with its first commit
                status = pa.concat_tables([self._status(refs, "pending", run_id, started),
                                           status])
            self.lake.commit(record, {"frame_labels": self._frame_labels(batch, run_id),
                                      "videos": self._videos(batch, run_id),
                                      "status_log": status})
            self._committed()
        intervals = seq + 1 if refs else 1
        self._record(run_id, started, at, len(refs), intervals)
        self.runs += 1

    def _record(self, run_id: str, started: datetime, finished: datetime, videos: int,
                intervals: int) -> None:
        wall = max((finished - started).total_seconds(), 0.5)
        frames = videos * len(self.frames)
        counts = {"videos": videos, "videos_ok": videos, "videos_failed": 0, "units": videos,
                  "units_failed": 0, "units_skipped": 0, "frames": frames}
        stages = ["list", "commit"] + (["probe", "fetch", "decode", "analysis"] if videos else [])
        stage_rows = [{
            "run_id": run_id, "stage": stage,
            "analysis": "frame_labels" if stage == "analysis" else None,
            "interval_start": started + timedelta(seconds=5 * i),
            "interval_s": 5.0, "workers": 1, "items_in": 0, "items_out": 0,
            "frames_in": 0, "frames_out": 0, "busy_s": 1.0, "idle_s": 0.0, "blocked_s": 0.0,
            "frames_per_s": 0.0, "bytes": 0, "queue_p50": 0, "queue_p95": 0, "queue_max": 0,
            "buffer_bytes": 0, "utilisation": 0.2, "gpu_utilisation": None,
            "gpu_memory_bytes": None} for i in range(intervals) for stage in stages]
        row = {
            "run_id": run_id, "started_at": started, "finished_at": finished,
            "status": "completed", "config": self.config_json, "counts": counts,
            "wall_s": wall, "frames_per_s": frames / wall, "code_version": "vidlake 0.1.0",
            "outputs": [{"table": "frame_labels", "analysis": "frame_labels", "model": MODEL,
                         "model_version": self.output.version,
                         "analysis_key": self.output.key}],
            "stages": [], "bottleneck": None,
        }
        record = CommitRecord(commit_id=f"{run_id}-runs-run_stages", run_id=run_id)
        self.lake.commit(record, {"runs": pa.Table.from_pylist([row], schema=RUNS),
                                  "run_stages": pa.Table.from_pylist(stage_rows,
                                                                     schema=RUN_STAGES)})
        self._committed()


def synthesize(source: str, lake_root: str, *, videos_per_run: int = 10_000,
               idle_runs: int = 0, checkpoint_every: int = RunPolicy().checkpoint_every,
               progress: Callable[[str], None] = lambda _: None) -> SynthesisReport:
    """Write a lake at `lake_root` holding every video `source` lists, done by
    the analysis the benchmark's relabel asks for (see the module doc), its log
    checkpointed every `checkpoint_every` commits as runs do (0: never)."""
    from pipeline.corpus.listing import list_corpus

    t0 = time.monotonic()
    output, config = frame_output(source, lake_root)
    refs = list_corpus(source, config.storage)
    writer = _Writer(ParquetLake(lake_root, config.storage), output, config.to_json(),
                     frame_indices(), checkpoint_every)
    runs = [refs[i:i + videos_per_run] for i in range(0, len(refs), videos_per_run)]
    runs += [[] for _ in range(idle_runs)]
    for index, batch in enumerate(runs):
        writer.run(batch, FIRST_RUN + timedelta(days=index))
        if (index + 1) % 10 == 0 or index + 1 == len(runs):
            progress(f"  synthesised run {index + 1}/{len(runs)} "
                     f"({writer.commits} commits, {time.monotonic() - t0:.0f}s)")
    return SynthesisReport(len(refs), writer.runs, writer.commits, time.monotonic() - t0)
