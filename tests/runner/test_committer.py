"""LakeCommitter: a video's `videos` row lands once, with its last unit, from the
outcomes of all its units; every row carries the run id."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.analyses.base import Analysis
from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.analyses.rows import STAMPED
from pipeline.analyses.shot_detector import ShotDetector, ShotOptions
from pipeline.config import AnalysisSpec
from pipeline.corpus.video_ref import VideoRef
from pipeline.lake.commit_record import UnitOutcome
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import FRAME_LABELS
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import BatchResult, failed_outcome
from pipeline.runner.committer import LakeCommitter
from pipeline.runner.run_outputs import RunOutput, RunOutputs
from pipeline.runner.video_ledger import DoneEarlier, Expected, Planned
from tests.lakes import rows, table_counts

REF = VideoRef("/videos/a.mp4", 1000, "mtime:1")
INFO = VideoInfo(REF, codec="h264", width=64, height=48, fps=25.0, n_frames=300,
                 duration_s=12.0, stream_index=0)


def _unit(index: int, frames: tuple[int, ...]) -> WorkUnit:
    return WorkUnit(f"unit-{index}", REF, index, frames, 25.0)


def _labels(frames: tuple[int, ...]) -> pa.Table:
    fields = [f for f in FRAME_LABELS if f.name not in STAMPED]
    data = [{"uri": REF.uri, "frame_index": i, "timestamp_s": i / 25, "label": "x",
             "score": 0.5, "topk_labels": ["x"], "topk_scores": [0.5], "model": "m",
             "model_version": "v"} for i in frames]
    return pa.Table.from_pylist(data, schema=pa.schema(fields))


def _rows(frames: tuple[int, ...]) -> dict[tuple[str, str], pa.Table]:
    """frame_labels rows of the frame_labels analysis."""
    return {("frame_labels", "frame_labels"): _labels(frames)}


def _ok(frames: tuple[int, ...]) -> UnitOutcome:
    return UnitOutcome(REF.content_key, "ok", None, "decord", 300, len(frames))


ANALYSES: list[Analysis] = [
    FrameClassifier("frame_labels", AnalysisSpec("frame_labels")),
    ShotDetector("shots", AnalysisSpec("shots", options=ShotOptions(min_shot_len=5)))]


def _committer(lake: ParquetLake, **options: Any) -> LakeCommitter:
    outputs = RunOutputs([
        RunOutput("frame_labels", "frame_labels", "frame_labels", "key", "m", "v"),
        RunOutput("shots", "shots", "shots", "skey", "content", "content")])
    return LakeCommitter(lake, run_id="run-1", outputs=outputs, analyses=ANALYSES,
                         models=lambda: {"frame_labels": "m", "shots": "content"}, **options)


def _expect(committer: LakeCommitter, info: VideoInfo, n_units: int,
            earlier: list[UnitOutcome], outputs: dict[str, tuple[str, ...]]) -> None:
    """Tell the committer what the planner learns: the video, its earlier units,
    its unit count."""
    content = info.ref.content_key
    committer.learn([Expected(info, outputs), *(DoneEarlier(content, o) for o in earlier),
                     Planned(content, n_units)])


def test_videos_row_lands_with_the_last_unit(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    _expect(committer, INFO, 2, [], {"frame_labels": ("frame_labels",)})
    first, second = (0, 10, 20), (30, 40)
    committer.add(BatchResult([(_unit(0, first), _ok(first))], _rows(first)))
    assert committer.counts.units == 0  # counts say what is committed, not buffered
    committer.flush()
    assert committer.counts.units == 1
    assert table_counts(root)["videos"] == 0
    assert table_counts(root)["frame_labels"] == 3
    committer.add(BatchResult([(_unit(1, second), _ok(second))], _rows(second)))
    committer.flush()
    (video,) = rows(root, "select * from videos")
    assert video | {"status": "ok", "error": None, "n_sampled": 5, "n_frames": 300,
                    "decoder": "decord", "run_id": "run-1", "width": 64, "height": 48} == video
    stamps = rows(root, "select distinct run_id, content_key, analysis_key from frame_labels")
    assert stamps == [{"run_id": "run-1", "content_key": REF.content_key, "analysis_key": "key"}]
    assert video["content_key"] == REF.content_key
    assert ParquetLake(root).state().videos_done == {f"{REF.content_key}:key"}
    (status,) = rows(root, "select * from status_log")
    assert status | {"uri": REF.uri, "analysis": "frame_labels", "model": "m",
                     "model_version": "v", "analysis_key": "key", "status": "done",
                     "error": None, "attempts": 0} == status
    counts = committer.counts
    assert (counts.videos_ok, counts.units, counts.frames) == (1, 2, 5)


def test_earlier_runs_outcomes_complete_a_video(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    # unit 0 was committed by a crashed run
    _expect(committer, INFO, 2, [_ok((0, 10, 20))], {"frame_labels": ("frame_labels",)})
    committer.add(BatchResult([(_unit(1, (30,)), _ok((30,)))], _rows((30,))))
    committer.flush()
    (video,) = rows(root, "select status, n_sampled from videos")
    assert video == {"status": "ok", "n_sampled": 4}


def test_one_failed_unit_fails_the_video_with_its_reason(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    _expect(committer, INFO, 2, [], {"frame_labels": ("frame_labels",)})
    committer.add(BatchResult([(_unit(0, (0,)), _ok((0,)))], _rows((0,))))
    committer.add(BatchResult([(_unit(1, (30,)), failed_outcome(_unit(1, (30,)), "boom"))]))
    committer.flush()
    (video,) = rows(root, "select status, error from videos")
    assert video == {"status": "error", "error": "boom (1 of 2 units failed)"}
    assert committer.counts.videos_failed == 1 and committer.counts.units_failed == 1
    state = ParquetLake(root).state()
    mark = f"{REF.content_key}:key"
    assert state.videos_done == set() and state.attempts(mark) == 1
    assert state.last_error(mark) == "boom (1 of 2 units failed)"
    assert set(state.ok_units()) == {"unit-0"}  # a retry runs unit 1 only
    # label's committer never quarantines (label does not retry)
    (status,) = rows(root, "select status, attempts, error from status_log")
    assert status == {"status": "failed", "attempts": 1, "error": "boom (1 of 2 units failed)"}


def test_video_that_failed_to_probe_is_recorded_without_units(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    _expect(committer, VideoInfo(REF, error="empty file (0 bytes)"), 0, [],
                     {"frame_labels": ("frame_labels",)})
    committer.flush()
    (video,) = rows(root, "select status, error, n_sampled from videos")
    assert video == {"status": "error", "error": "empty file (0 bytes)", "n_sampled": 0}


def _shot_outcome(cuts: list[list[float]], first: int, last: int) -> UnitOutcome:
    summary = {"cuts": cuts, "first": [first, first / 25], "last": [last, last / 25]}
    return UnitOutcome(REF.content_key, "ok", None, "decord", 300, last - first + 1,
                       summaries={"shots": summary})


def test_shots_tile_the_video_from_every_units_cuts_earlier_runs_included(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    # unit 0 was committed by a run that crashed; its cuts live in its outcome
    earlier = _shot_outcome([[40, 1.6, 0.5], [42, 1.68, 0.4]], 0, 149)
    _expect(committer, INFO, 2, [earlier],
                     {"shots": ("shots",), "frame_labels": ("frame_labels",)})
    later = _shot_outcome([[150, 6.0, 0.3], [200, 8.0, 0.6]], 150, 299)
    committer.add(BatchResult([(_unit(1, tuple(range(150, 300))), later)]))
    committer.flush()
    shots = rows(root, "select shot_index, start_frame, end_frame, start_s, end_s, detector "
                       "from shots order by shot_index")
    # 42 is within min_shot_len (5) of 40 and dropped; 150 and 200 are kept
    assert [(s["start_frame"], s["end_frame"]) for s in shots] == \
        [(0, 40), (40, 150), (150, 200), (200, 300)]
    assert [s["shot_index"] for s in shots] == [0, 1, 2, 3]
    assert shots[-1]["end_s"] == 12.0 and shots[1]["start_s"] == 1.6
    assert all(a["end_s"] == b["start_s"] for a, b in itertools.pairwise(shots))
    (video,) = rows(root, "select analyses, model from videos")
    assert video["analyses"] == ["shots:content@content", "frame_labels:m@v"]
    assert ParquetLake(root).state().videos_done == {f"{REF.content_key}:skey",
                                                     f"{REF.content_key}:key"}


def test_no_shots_for_a_video_with_a_failed_unit(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    _expect(committer, INFO, 2, [_shot_outcome([], 0, 149)], {"shots": ("shots",)})
    committer.add(BatchResult([(_unit(1, (150,)), failed_outcome(_unit(1, (150,)), "hung"))]))
    committer.flush()
    assert table_counts(root)["shots"] == 0
    (video,) = rows(root, "select status from videos")
    assert video["status"] == "error"


def test_the_committer_checkpoints_the_log_every_n_commits(tmp_path: Path):
    """One commit was outside a checkpoint before the run; with checkpoint_every=3
    the 2nd and 5th of the run's commits checkpoint, the 6th stays in the tail."""
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root), checkpoint_every=3, uncheckpointed=1)
    _expect(committer, INFO, 6, [], {"frame_labels": ("frame_labels",)})
    for index in range(6):
        frames = (index * 10,)
        committer.add(BatchResult([(_unit(index, frames), _ok(frames))], _rows(frames)))
        committer.flush()
    found = ParquetLake(root).log()
    assert (found.seq, len(found.tail), len(found)) == (2, 1, 6)
    assert found.state().videos_done == {f"{REF.content_key}:key"}
    assert set(found.state().ok_units_of([REF.content_key])) == {f"unit-{i}" for i in range(6)}
    assert table_counts(root)["frame_labels"] == 6
