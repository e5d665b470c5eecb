"""LakeCommitter: a video's `videos` row lands once, with its last unit, from the
outcomes of all its units; every row carries the run id."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pipeline.corpus.video_ref import VideoRef
from pipeline.lake.commit_record import UnitOutcome
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import FRAME_LABELS
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import BatchResult, failed_outcome
from pipeline.runner.committer import LakeCommitter
from tests.lakes import rows, table_counts

REF = VideoRef("/videos/a.mp4", 1000, "mtime:1")
INFO = VideoInfo(REF, codec="h264", width=64, height=48, fps=25.0, n_frames=300,
                 duration_s=12.0, stream_index=0)


def _unit(index: int, frames: tuple[int, ...]) -> WorkUnit:
    return WorkUnit(f"unit-{index}", REF, index, 2, frames, 25.0)


def _labels(frames: tuple[int, ...]) -> pa.Table:
    fields = [f for f in FRAME_LABELS if f.name != "run_id"]
    data = [{"uri": REF.uri, "frame_index": i, "timestamp_s": i / 25, "label": "x",
             "score": 0.5, "topk_labels": ["x"], "topk_scores": [0.5], "model": "m",
             "model_version": "v"} for i in frames]
    return pa.Table.from_pylist(data, schema=pa.schema(fields))


def _ok(frames: tuple[int, ...]) -> UnitOutcome:
    return UnitOutcome(REF.content_key, "ok", None, "decord", 300, len(frames))


def _committer(lake: ParquetLake) -> LakeCommitter:
    return LakeCommitter(lake, run_id="run-1", analysis_key="key", model=lambda: "m",
                         model_version="v")


def test_videos_row_lands_with_the_last_unit(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    committer.expect(INFO, 2, [])
    first, second = (0, 10, 20), (30, 40)
    committer.add(BatchResult([(_unit(0, first), _ok(first))], {"frame_labels": _labels(first)}))
    committer.flush()
    assert table_counts(root)["videos"] == 0
    assert table_counts(root)["frame_labels"] == 3
    committer.add(BatchResult([(_unit(1, second), _ok(second))],
                              {"frame_labels": _labels(second)}))
    committer.flush()
    (video,) = rows(root, "select * from videos")
    assert video | {"status": "ok", "error": None, "n_sampled": 5, "n_frames": 300,
                    "decoder": "decord", "run_id": "run-1", "width": 64, "height": 48} == video
    assert {r["run_id"] for r in rows(root, "select run_id from frame_labels")} == {"run-1"}
    assert ParquetLake(root).state().videos_done == {f"{REF.content_key}:key"}
    counts = committer.counts
    assert (counts.videos_ok, counts.units, counts.frames) == (1, 2, 5)


def test_earlier_runs_outcomes_complete_a_video(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    committer.expect(INFO, 2, [_ok((0, 10, 20))])  # unit 0 committed by a crashed run
    committer.add(BatchResult([(_unit(1, (30,)), _ok((30,)))], {"frame_labels": _labels((30,))}))
    committer.flush()
    (video,) = rows(root, "select status, n_sampled from videos")
    assert video == {"status": "ok", "n_sampled": 4}


def test_one_failed_unit_fails_the_video_with_its_reason(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    committer.expect(INFO, 2, [])
    committer.add(BatchResult([(_unit(0, (0,)), _ok((0,)))], {"frame_labels": _labels((0,))}))
    committer.add(BatchResult([(_unit(1, (30,)), failed_outcome(_unit(1, (30,)), "boom"))]))
    committer.flush()
    (video,) = rows(root, "select status, error from videos")
    assert video == {"status": "error", "error": "boom (1 of 2 units failed)"}
    assert committer.counts.videos_failed == 1 and committer.counts.units_failed == 1


def test_video_that_failed_to_probe_is_recorded_without_units(tmp_path: Path):
    root = str(tmp_path / "lake")
    committer = _committer(ParquetLake(root))
    committer.expect(VideoInfo(REF, error="empty file (0 bytes)"), 0, [])
    committer.flush()
    (video,) = rows(root, "select status, error, n_sampled from videos")
    assert video == {"status": "error", "error": "empty file (0 bytes)", "n_sampled": 0}
