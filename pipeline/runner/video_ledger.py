"""VideoLedger: which videos of a run are finished, and what that means for the
lake, with no I/O.

A video is finished once planning has gone past its last unit and every unit
has an outcome (earlier runs' included). Then, from its probe and all its
outcomes, the ledger makes its `videos` row, its done/failed markers, one
status entry per output (done, failed or quarantined) and its video-level
rows (shots). The committer (committer.py) buffers these and commits them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from pipeline.analyses.base import Analysis
from pipeline.corpus.video_ref import VideoRef
from pipeline.lake.commit_record import UnitOutcome
from pipeline.lake.lake_state import marker
from pipeline.lake.schemas import STATUS_LOG
from pipeline.plan.video_info import VideoInfo
from pipeline.runner.run_outputs import RunOutputs

Outputs = dict[str, tuple[str, ...]]  # analysis name -> the tables this run writes for it


@dataclass(frozen=True)
class StatusEntry:
    """One `status_log` event of one output of one video."""

    ref: VideoRef
    analysis: str  # the analysis's name in this run (its model is looked up by it)
    table: str
    analysis_key: str
    status: str  # pending, done, failed or quarantined
    error: str | None
    attempts: int


@dataclass
class FinishedVideo:
    """What a finished video adds to the lake (the videos row lacks its models,
    known once they have loaded)."""

    ref: VideoRef
    row: dict[str, object]
    ok: bool
    done: list[str] = field(default_factory=list)  # markers
    failed: dict[str, str] = field(default_factory=dict)  # marker -> error
    statuses: list[StatusEntry] = field(default_factory=list)
    tables: list[tuple[str, str, pa.Table]] = field(default_factory=list)  # (analysis, table, rows)


@dataclass(frozen=True)
class Pending:
    """The run took the video on (before its probe): its outputs are pending."""

    ref: VideoRef
    outputs: Outputs


@dataclass(frozen=True)
class Expected:
    """Planning reached a video: this run writes `outputs` for it."""

    info: VideoInfo
    outputs: Outputs


@dataclass(frozen=True)
class DoneEarlier:
    """A unit of the video was committed by an earlier run (not run again)."""

    content_key: str
    outcome: UnitOutcome


@dataclass(frozen=True)
class Planned:
    """Planning went past the video's last unit: it has `n_units` units."""

    content_key: str
    n_units: int


VideoEvent = Pending | Expected | DoneEarlier | Planned


@dataclass
class _Progress:
    info: VideoInfo
    outputs: Outputs
    outcomes: list[UnitOutcome] = field(default_factory=list)
    expected: int | None = None  # units, once planning has gone past the last

    @property
    def complete(self) -> bool:
        return self.expected is not None and len(self.outcomes) >= self.expected


class VideoLedger:
    """Open videos and their unit outcomes; yields each video once, finished.

    `outputs`: the run's tables and their analysis keys; `attempts`: failed attempts
    of a marker before this run; a failure that reaches `max_attempts` is
    quarantined (0: never).
    """

    def __init__(self, outputs: RunOutputs, analyses: list[Analysis], *,
                 attempts: Callable[[str], int] = lambda _: 0, max_attempts: int = 0) -> None:
        self.outputs = outputs
        self.analyses = {a.name: a for a in analyses}
        self.attempts = attempts
        self.max_attempts = max_attempts
        self._open: dict[str, _Progress] = {}
        self.content_keys: dict[str, str] = {}  # uri -> content_key of this run's open videos

    def learn(self, event: Expected | DoneEarlier | Planned) -> FinishedVideo | None:
        """Record what planning found; the video if that finishes it."""
        if isinstance(event, Expected):
            self._open[event.info.ref.content_key] = _Progress(event.info, event.outputs)
            self.content_keys[event.info.ref.uri] = event.info.ref.content_key
            return None
        progress = self._open[event.content_key]
        if isinstance(event, DoneEarlier):
            progress.outcomes.append(event.outcome)
        else:
            progress.expected = event.n_units
        return self._finished(progress)

    def outcome(self, content_key: str, outcome: UnitOutcome) -> FinishedVideo | None:
        progress = self._open[content_key]
        progress.outcomes.append(outcome)
        return self._finished(progress)

    def _finished(self, progress: _Progress) -> FinishedVideo | None:
        if not progress.complete:
            return None
        # a long run holds only open videos (the committer drops the uri's key
        # once it has buffered the video's rows)
        del self._open[progress.info.ref.content_key]
        ref = progress.info.ref
        row = {**video_row(progress.info, progress.outcomes),
               "analyses": list(progress.outputs), "content_key": ref.content_key}
        video = FinishedVideo(ref, row, ok=row["status"] == "ok")
        for name, outputs in progress.outputs.items():
            for output in outputs:
                video.statuses.append(self._status(video, name, output))
        if video.ok:
            for name in progress.outputs:
                finished = self.analyses[name].finish_video(progress.info, progress.outcomes)
                video.tables += [(name, table, rows) for table, rows in finished.items()]
        return video

    def _status(self, video: FinishedVideo, name: str, output: str) -> StatusEntry:
        key = self.outputs.key(name, output)
        mark = marker(video.ref.content_key, key)
        error = None if video.ok else str(video.row["error"])
        if error is None:
            video.done.append(mark)
        else:
            video.failed[mark] = error
        attempts = self.attempts(mark) + (0 if video.ok else 1)
        status = "done" if video.ok else (
            "quarantined" if 0 < self.max_attempts <= attempts else "failed")
        return StatusEntry(video.ref, name, output, key, status, error, attempts)

    def pending(self, videos: list[tuple[VideoRef, Outputs]]) -> list[StatusEntry]:
        """`pending` entries for these videos' outputs (this run will do them)."""
        entries = []
        for ref, outputs in videos:
            for name, tables in outputs.items():
                for table in tables:
                    key = self.outputs.key(name, table)
                    entries.append(StatusEntry(ref, name, table, key, "pending", None,
                                               self.attempts(marker(ref.content_key, key))))
        return entries


def status_table(entries: list[StatusEntry], models: dict[str, str],
                 versions: dict[str, str], run_id: str) -> pa.Table:
    """`status_log` rows of `entries`; `models`/`versions`: analysis name -> model
    name / model_version."""
    now = datetime.now(timezone.utc)
    return pa.Table.from_pylist([
        {"uri": e.ref.uri, "content_key": e.ref.content_key, "size_bytes": e.ref.size_bytes,
         "etag": e.ref.etag, "analysis": e.table, "model": models.get(e.analysis, ""),
         "model_version": versions.get(e.analysis, ""), "analysis_key": e.analysis_key,
         "status": e.status, "error": e.error, "attempts": e.attempts, "run_id": run_id,
         "updated_at": now} for e in entries], schema=STATUS_LOG)


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
