"""LakeCommitter: group finished units into commits and emit `videos` rows.

A video's `videos` row, its `status_log` rows (done, failed or quarantined
per output) and the rows of video-level analyses (shots) are committed
together with its last unit, from the outcomes of all its units (earlier
runs' included), so they appear exactly once, after everything about the
video is in the lake. Every row is stamped with the run_id, the video's
content_key and its analysis's analysis_key.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from pipeline.analyses.base import Analysis
from pipeline.corpus.video_ref import VideoRef
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.lake_state import marker
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import STATUS_LOG, TABLES, VIDEOS
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import BatchResult
from pipeline.runner.interrupts import sigint_deferred

log = logging.getLogger(__name__)


@dataclass
class VideoProgress:
    """The outcomes of one video's units seen so far, and how many there are
    once planning has gone past its last unit (None until then)."""

    info: VideoInfo
    outputs: dict[str, tuple[str, ...]]  # analysis -> the tables this run writes for it
    outcomes: list[UnitOutcome] = field(default_factory=list)
    expected: int | None = None

    @property
    def complete(self) -> bool:
        return self.expected is not None and len(self.outcomes) >= self.expected


@dataclass
class RunCounts:
    """What a run committed (buffered results count once their commit is written)."""

    videos_ok: int = 0
    videos_failed: int = 0
    units: int = 0
    units_failed: int = 0
    frames: int = 0

    def add(self, other: RunCounts) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


class LakeCommitter:
    """Buffers BatchResults and commits them every `max_units` units or
    `max_interval_s` seconds, whichever comes first (a crash loses at most
    what is buffered and in flight)."""

    def __init__(self, lake: ParquetLake, *, run_id: str, keys: dict[str, dict[str, str]],
                 versions: dict[str, str], analyses: list[Analysis],
                 models: Callable[[], dict[str, str]],
                 attempts: Callable[[str], int] = lambda _: 0, max_attempts: int = 0,
                 before_commit: Callable[[], None] = lambda: None, max_units: int = 256,
                 max_interval_s: float = 5.0) -> None:
        """`keys`: analysis name -> output table -> analysis key; `versions`:
        analysis name -> model_version;
        `models`: analysis name -> model name, called once the models have
        loaded (which proves the weights good); `attempts`: failed attempts
        of a video marker before this run; a failure that reaches
        `max_attempts` is recorded as quarantined (0: never, as for `label`,
        which does not retry); `before_commit` runs
        before each commit (the lake lock's check)."""
        self.lake = lake
        self.run_id = run_id
        self.keys = keys
        self.versions = versions
        self.analyses = {a.name: a for a in analyses}
        self.models = models
        self.attempts = attempts
        self.max_attempts = max_attempts
        self.before_commit = before_commit
        self.max_units = max_units
        self.max_interval_s = max_interval_s
        self.counts = RunCounts()  # committed
        self._buffered = RunCounts()  # added, not yet committed
        self._videos: dict[str, VideoProgress] = {}
        self._content_keys: dict[str, str] = {}  # uri -> content_key of this run's videos
        self._tables: dict[str, list[pa.Table]] = {}
        self._units: dict[str, UnitOutcome] = {}
        self._videos_done: list[str] = []
        self._videos_failed: dict[str, str] = {}
        self._uris: dict[str, str] = {}
        self._video_rows: list[dict[str, object]] = []
        self._status_rows: list[dict[str, object]] = []
        self._pending: pa.Table | None = None
        self._seq = 0
        self.commits = 0
        self._last_flush = time.monotonic()

    def expect(self, info: VideoInfo, outputs: dict[str, tuple[str, ...]]) -> None:
        """Register a video about to be planned for `outputs` (analysis name ->
        tables); `earlier` and `planned` follow as planning walks it."""
        self._videos[info.ref.content_key] = VideoProgress(info, outputs)
        self._content_keys[info.ref.uri] = info.ref.content_key

    def earlier(self, content_key: str, outcome: UnitOutcome) -> None:
        """A unit of the video committed by an earlier run (not run again)."""
        self._videos[content_key].outcomes.append(outcome)

    def planned(self, content_key: str, n_units: int) -> None:
        """Planning went past the video's last unit: it has `n_units` units."""
        progress = self._videos[content_key]
        progress.expected = n_units
        if progress.complete:
            self._finish_video(progress)

    def add(self, result: BatchResult) -> None:
        for (analysis, name), table in result.tables.items():
            self._add_rows(analysis, name, table)
        for unit, outcome in result.outcomes:
            self._add_outcome(unit, outcome)
        if (len(self._units) >= self.max_units
                or time.monotonic() - self._last_flush >= self.max_interval_s):
            self.flush()

    def _add_outcome(self, unit: WorkUnit, outcome: UnitOutcome) -> None:
        self._units[unit.unit_id] = outcome
        self._buffered.units += 1
        self._buffered.frames += outcome.frames
        if outcome.status != "ok":
            self._buffered.units_failed += 1
        progress = self._videos[unit.video.content_key]
        progress.outcomes.append(outcome)
        if progress.complete:
            self._finish_video(progress)

    def _add_rows(self, analysis: str, name: str, table: pa.Table) -> None:
        """Buffer rows of `analysis` for table `name`, stamped with their versions."""
        content = [self._content_keys[uri] for uri in table.column("uri").to_pylist()]
        table = table.append_column("content_key", pa.array(content, pa.string()))
        table = table.append_column("analysis_key", pa.array(
            [self.keys[analysis].get(name, "")] * table.num_rows, pa.string()))
        self._tables.setdefault(name, []).append(table)

    def _finish_video(self, progress: VideoProgress) -> None:
        row = video_row(progress.info, progress.outcomes)
        ref = progress.info.ref
        row.update(analyses=list(progress.outputs), run_id=self.run_id,
                   content_key=ref.content_key)
        self._video_rows.append(row)
        self._uris[ref.content_key] = ref.uri
        ok = row["status"] == "ok"
        for name, outputs in progress.outputs.items():
            for output in outputs:
                mark = marker(ref.content_key, self.keys[name][output])
                if ok:
                    self._videos_done.append(mark)
                else:
                    self._videos_failed[mark] = str(row["error"])
                attempts = self.attempts(mark) + (0 if ok else 1)
                status = "done" if ok else (
                    "quarantined" if 0 < self.max_attempts <= attempts else "failed")
                self._status_rows.append(status_row(
                    ref, name, output, self.keys[name][output], status,
                    None if ok else str(row["error"]), attempts, self.run_id))
        if ok:
            for name in progress.outputs:
                for table, rows in self.analyses[name].finish_video(
                        progress.info, progress.outcomes).items():
                    self._add_rows(name, table, rows)
            self._buffered.videos_ok += 1
        else:
            self._buffered.videos_failed += 1
        del self._videos[ref.content_key]  # done: a long run holds only open videos

    def flush(self) -> None:
        """Commit everything buffered as one commit (no-op when empty)."""
        self._last_flush = time.monotonic()
        if not self._units and not self._video_rows:
            return
        tables = {name: _stamp(pa.concat_tables(parts), name, self.run_id)
                  for name, parts in self._tables.items()}
        if self._video_rows:
            # Model names are known once the models have loaded, which also proves
            # the weights good: nothing is committed for a model that cannot load.
            tables["videos"] = pa.Table.from_pylist(
                [self._with_models(row) for row in self._video_rows], schema=VIDEOS)
        status = [self._pending] + (
            [self._named(self._status_rows, self.models())] if self._status_rows else [])
        if any(t is not None for t in status):
            tables["status_log"] = pa.concat_tables([t for t in status if t is not None])
        record = CommitRecord(commit_id=f"{self.run_id}-{self._seq:05d}", run_id=self.run_id,
                              units=dict(self._units), videos_done=list(self._videos_done),
                              videos_failed=dict(self._videos_failed), uris=dict(self._uris))
        self.before_commit()
        with sigint_deferred():  # counts and the log agree even after Ctrl-C
            self.lake.commit(record, tables)
            self.counts.add(self._buffered)
            self._buffered = RunCounts()
            self._seq += 1
            self.commits += 1
        self._tables, self._units, self._videos_done, self._video_rows = {}, {}, [], []
        self._videos_failed, self._uris, self._status_rows = {}, {}, []
        self._pending = None

    def _named(self, rows: list[dict[str, object]], models: dict[str, str]) -> pa.Table:
        """status_log rows, their analysis name replaced by its model and version."""
        return pa.Table.from_pylist(
            [{**row, "model": models.get(str(row["model"]), ""),
              "model_version": self.versions.get(str(row["model"]), "")} for row in rows],
            schema=STATUS_LOG)

    def pending(self, videos: list[tuple[VideoRef, dict[str, tuple[str, ...]]]],
                models: dict[str, str]) -> None:
        """`status_log` rows saying these videos' outputs are pending, committed
        with the first commit (a run that dies later leaves them pending; one
        that fails before any work leaves nothing); `models`: analysis name ->
        model, as the driver knows it before loading."""
        rows = [status_row(ref, name, output, self.keys[name][output], "pending", None,
                           self.attempts(marker(ref.content_key, self.keys[name][output])),
                           self.run_id)
                for ref, outputs in videos for name, tables in outputs.items()
                for output in tables]
        self._pending = self._named(rows, models) if rows else None

    def _with_models(self, row: dict[str, object]) -> dict[str, object]:
        models = self.models()
        names: list[str] = row["analyses"]  # type: ignore[assignment]
        archs = [models.get(n, "") for n in names]
        versions = [self.versions[n] for n in names]
        return {**row, "model": "+".join(archs), "model_version": "+".join(versions),
                "analyses": [f"{self.analyses[n].spec.kind}:{arch}@{version}"
                             for n, arch, version in zip(names, archs, versions, strict=True)]}

    def commit_table(self, name: str, table: pa.Table) -> None:
        """Commit one table on its own (the `runs` row)."""
        record = CommitRecord(commit_id=f"{self.run_id}-{name}", run_id=self.run_id)
        self.before_commit()
        with sigint_deferred():
            self.lake.commit(record, {name: table})


def status_row(ref: VideoRef, analysis: str, table: str, analysis_key: str, status: str,
               error: str | None, attempts: int, run_id: str) -> dict[str, object]:
    """A `status_log` row; `model` holds the analysis name until `_named` fills in
    the model and its version."""
    return {"uri": ref.uri, "content_key": ref.content_key, "size_bytes": ref.size_bytes,
            "etag": ref.etag, "analysis": table, "model": analysis, "model_version": "",
            "analysis_key": analysis_key, "status": status, "error": error,
            "attempts": attempts, "run_id": run_id, "updated_at": datetime.now(timezone.utc)}


def _stamp(table: pa.Table, name: str, run_id: str) -> pa.Table:
    table = table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))
    return table.select(TABLES[name].names) if name in TABLES else table


def video_row(info: VideoInfo, outcomes: list[UnitOutcome]) -> dict[str, object]:
    """The `videos` row of a video from its probe and all its unit outcomes."""
    errors = [o.error for o in outcomes if o.status != "ok" and o.error]
    error = info.error or (errors[0] if errors else None)
    if errors and len(outcomes) > 1:
        error = f"{error} ({len(errors)} of {len(outcomes)} units failed)"
    decoders = sorted({o.decoder for o in outcomes if o.decoder})
    decoder_counts = [o.decoder_n_frames for o in outcomes if o.decoder_n_frames > 0]
    ref = info.ref
    return {
        "uri": ref.uri, "size_bytes": ref.size_bytes, "etag": ref.etag,
        "status": "error" if error else "ok", "error": error,
        "decoder": "+".join(decoders), "codec": info.codec, "container": info.container,
        "width": info.width, "height": info.height, "fps": info.fps,
        "n_frames": max(decoder_counts) if decoder_counts else info.n_frames,
        "duration_s": info.duration_s, "rotation": info.rotation,
        "n_sampled": sum(o.frames for o in outcomes),
    }
