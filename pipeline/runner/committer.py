"""LakeCommitter: buffer a run's results and commit them in batches.

What a finished video means for the lake (its `videos` row, status events
and video-level rows) is decided by the VideoLedger (video_ledger.py); this
module only buffers, stamps every row with the run_id, the video's
content_key and its analysis's analysis_key, and commits every `max_units`
units or `max_interval_s` seconds. A video's rows are committed together with
its last unit, so they appear exactly once, after everything about the video
is in the lake.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from pipeline.analyses.base import Analysis
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import VIDEOS, all_tables
from pipeline.runner.batch_result import BatchResult
from pipeline.runner.interrupts import sigint_deferred
from pipeline.runner.run_outputs import RunOutputs
from pipeline.runner.video_ledger import (
    FinishedVideo,
    Pending,
    StatusEntry,
    VideoEvent,
    VideoLedger,
    status_table,
)

log = logging.getLogger(__name__)


@dataclass
class RunCounts:
    """What a run committed (buffered results count once their commit is written)."""

    videos_ok: int = 0
    videos_failed: int = 0
    units: int = 0
    units_failed: int = 0
    frames: int = 0
    video_s: float = 0.0  # duration of the videos finished ok (cost figures)

    def add(self, other: RunCounts) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


class LakeCommitter:
    """Buffers BatchResults and commits them every `max_units` units or
    `max_interval_s` seconds, whichever comes first (a crash loses at most
    what is buffered and in flight)."""

    def __init__(self, lake: ParquetLake, *, run_id: str, outputs: RunOutputs,
                 analyses: list[Analysis],
                 models: Callable[[], dict[str, str]],
                 attempts: Callable[[str], int] = lambda _: 0, max_attempts: int = 0,
                 before_commit: Callable[[], None] = lambda: None, max_units: int = 256,
                 max_interval_s: float = 5.0, checkpoint_every: int = 0,
                 uncheckpointed: int = 0) -> None:
        """`outputs`: the run's tables, analysis keys and model versions;
        `models`: analysis name -> model name,
        called once the models have loaded (which proves the weights good);
        `attempts`/`max_attempts`: see VideoLedger; `before_commit` runs
        before each commit (the lake lock's check); `checkpoint_every`: fold
        the log into a checkpoint once that many commits are not in one (0:
        never), `uncheckpointed` of them already before this run."""
        self.lake = lake
        self.run_id = run_id
        self.outputs = outputs
        self.versions = {name: outputs.version(name) for name in outputs.analyses}
        self.models = models
        self.ledger = VideoLedger(outputs, analyses, attempts=attempts, max_attempts=max_attempts)
        self.before_commit = before_commit
        self.max_units = max_units
        self.max_interval_s = max_interval_s
        self.counts = RunCounts()  # committed
        self.commits = 0
        self.checkpoint_every = checkpoint_every
        self._uncheckpointed = uncheckpointed
        self._seq = 0
        self._last_flush = time.monotonic()
        self._pending: list[StatusEntry] = []  # committed with the next commit
        self._pending_models: dict[str, str] = {}
        self._clear()

    def _clear(self) -> None:
        """Start an empty buffer."""
        self._buffered = RunCounts()  # added, not yet committed
        self._tables: dict[str, list[pa.Table]] = {}
        self._units: dict[str, UnitOutcome] = {}
        self._videos: list[FinishedVideo] = []

    # -- what planning and the engine report ------------------------------------
    def learn(self, events: list[VideoEvent]) -> None:
        """What planning found about videos (before any of their results)."""
        for event in events:
            if isinstance(event, Pending):
                self._pending += self.ledger.pending([(event.ref, event.outputs)])
            else:
                self._buffer_video(self.ledger.learn(event))

    def add(self, result: BatchResult) -> None:
        for (analysis, name), table in result.tables.items():
            self._add_rows(analysis, name, table)
        for unit, outcome in result.outcomes:
            self._units[unit.unit_id] = outcome
            self._buffered.units += 1
            self._buffered.frames += outcome.frames
            self._buffered.units_failed += outcome.status != "ok"
            self._buffer_video(self.ledger.outcome(unit.video.content_key, outcome))
        if (len(self._units) >= self.max_units
                or time.monotonic() - self._last_flush >= self.max_interval_s):
            self.flush()

    def pending_models(self, models: dict[str, str]) -> None:
        """The models `pending` status rows name (analysis name -> model, as the
        driver knows it before loading). Each video `Pending` announces gets
        `status_log` rows saying its outputs are pending, committed with the
        next commit (a run that dies later leaves them pending; one that fails
        before any work leaves nothing)."""
        self._pending_models = models

    # -- buffering ------------------------------------------------------------
    def _buffer_video(self, video: FinishedVideo | None) -> None:
        if video is None:
            return
        self._videos.append(video)
        for analysis, table, rows in video.tables:
            self._add_rows(analysis, table, rows)
        self.ledger.content_keys.pop(video.ref.uri, None)  # its rows are all in
        if video.ok:
            self._buffered.videos_ok += 1
            self._buffered.video_s += _seconds(video.row.get("duration_s"))
        else:
            self._buffered.videos_failed += 1

    def _add_rows(self, analysis: str, name: str, table: pa.Table) -> None:
        """Buffer rows of `analysis` for table `name`, stamped with their versions."""
        keys = self.ledger.content_keys
        content = [keys[uri] for uri in table.column("uri").to_pylist()]
        table = table.append_column("content_key", pa.array(content, pa.string()))
        table = table.append_column("analysis_key", pa.array(
            [self.outputs.key(analysis, name)] * table.num_rows, pa.string()))
        self._tables.setdefault(name, []).append(table)

    # -- committing -----------------------------------------------------------
    def flush(self) -> None:
        """Commit everything buffered as one commit (no-op when empty)."""
        self._last_flush = time.monotonic()
        if not self._units and not self._videos:
            return
        tables = {name: _stamp(pa.concat_tables(parts), name, self.run_id)
                  for name, parts in self._tables.items()}
        if self._videos:
            # Model names are known once the models have loaded, which also proves
            # the weights good: nothing is committed for a model that cannot load.
            models = self.models()
            tables["videos"] = pa.Table.from_pylist(
                [self._video_row(v, models) for v in self._videos], schema=VIDEOS)
        status = [status_table(entries, names, self.versions, self.run_id)
                  for entries, names in self._status_parts() if entries]
        if status:
            tables["status_log"] = pa.concat_tables(status)
        record = CommitRecord(
            commit_id=f"{self.run_id}-{self._seq:05d}", run_id=self.run_id,
            units=dict(self._units), videos_done=[m for v in self._videos for m in v.done],
            videos_failed={m: e for v in self._videos for m, e in v.failed.items()},
            uris={v.ref.content_key: v.ref.uri for v in self._videos})
        self.before_commit()
        with sigint_deferred():  # counts and the log agree even after Ctrl-C
            self.lake.commit(record, tables)
            self.counts.add(self._buffered)
            self._seq += 1
            self.commits += 1
        self._clear()
        self._pending = []
        self._uncheckpointed += 1
        if self.checkpoint_every and self._uncheckpointed >= self.checkpoint_every:
            self.lake.checkpoint(before_write=self.before_commit)
            self._uncheckpointed = 0

    def _status_parts(self) -> list[tuple[list[StatusEntry], dict[str, str]]]:
        """Status entries to commit, each with the models they name: pending ones
        the driver's, the finished videos' the loaded ones."""
        finished = [e for v in self._videos for e in v.statuses]
        return [(self._pending, self._pending_models),
                (finished, self.models() if finished else {})]

    def _video_row(self, video: FinishedVideo, models: dict[str, str]) -> dict[str, object]:
        names: list[str] = video.row["analyses"]  # type: ignore[assignment]
        archs = [models.get(n, "") for n in names]
        versions = [self.versions[n] for n in names]
        return {**video.row, "run_id": self.run_id, "model": "+".join(archs),
                "model_version": "+".join(versions),
                "analyses": [f"{self.outputs.kind(n)}:{arch}@{version}"
                             for n, arch, version in zip(names, archs, versions, strict=True)]}

    def commit_tables(self, tables: dict[str, pa.Table]) -> None:
        """Commit tables on their own (the `runs` row and the run's `run_stages`)."""
        record = CommitRecord(commit_id=f"{self.run_id}-{'-'.join(tables)}", run_id=self.run_id)
        self.before_commit()
        with sigint_deferred():
            self.lake.commit(record, tables)


def _seconds(value: object) -> float:
    """A duration from a videos row; 0 when unknown, non-finite or negative."""
    if isinstance(value, int | float) and math.isfinite(value) and value > 0:
        return float(value)
    return 0.0


def _stamp(table: pa.Table, name: str, run_id: str) -> pa.Table:
    table = table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))
    schema = all_tables().get(name)
    return table.select(schema.names) if schema is not None else table
