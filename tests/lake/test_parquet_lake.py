"""ParquetLake: every table round-trips through DuckDB, readers never see staged
files, and an interrupted commit is rolled forward exactly once. Each test runs
on a local folder and on a SeaweedFS bucket."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.parquet_lake import COMMITS_DIR, STAGING_DIR, ParquetLake, parquet_bytes
from pipeline.lake.schemas import all_tables
from pipeline.storage import filesystem, fs_path, join
from tests.lakes import rows, table_counts

TABLES = all_tables()


class SimulatedCrash(Exception):
    """Raised by a lake that 'dies' at a chosen step of the commit protocol."""


class CrashBeforePublish(ParquetLake):
    """Stages and records the commit, then dies before moving any file."""

    def _move(self, src: str, dst: str) -> None:
        raise SimulatedCrash(dst)


class CrashBeforeRecord(ParquetLake):
    """Stages the files, then dies before the commit record is written."""

    def _write_atomic(self, path: str, data: bytes) -> None:
        if path.endswith(".json"):
            raise SimulatedCrash(path)
        super()._write_atomic(path, data)


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.slow, pytest.mark.s3])])
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A lake root: a local folder, or a prefix in a fresh SeaweedFS bucket."""
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


def _when(second: int) -> datetime:
    return datetime(2025, 1, 2, 3, 4, second, 123456, tzinfo=timezone.utc)


SAMPLE_ROWS: dict[str, list[dict]] = {
    "videos": [
        {"uri": "s3://b/a.mp4", "size_bytes": 1234, "etag": "e1", "status": "ok", "error": None,
         "decoder": "decord", "codec": "h264", "width": 64, "height": 48, "fps": 25.0,
         "n_frames": 300, "duration_s": 12.0, "rotation": 90, "n_sampled": 8,
         "analyses": ["frame_labels:mobilenet_v3_small@abc123def456", "shots:content@content"],
         "model": "mobilenet_v3_small+content", "model_version": "abc123def456+content",
         "run_id": "r1"},
        {"uri": "/data/b é.mkv", "size_bytes": 0, "etag": "mtime:1", "status": "error",
         "error": "empty file (0 bytes)", "decoder": "", "codec": "", "width": 0, "height": 0,
         "fps": 0.0, "n_frames": 0, "duration_s": 0.0, "rotation": 0, "n_sampled": 0,
         "analyses": ["frame_labels:mobilenet_v3_small@abc123def456"],
         "model": "mobilenet_v3_small", "model_version": "abc123def456", "run_id": "r1"},
    ],
    "frame_labels": [
        {"uri": "s3://b/a.mp4", "frame_index": i, "timestamp_s": i / 25, "label": f"l{i}",
         "score": 0.5, "topk_labels": [f"l{i}", "other"], "topk_scores": [0.5, 0.25],
         "model": "m", "model_version": "v", "run_id": "r1"} for i in (0, 7, 299)
    ],
    "frame_embeddings": [
        {"uri": "s3://b/a.mp4", "frame_index": i, "timestamp_s": i / 25,
         "embedding": [float(i), -1.5, 0.25], "model": "m", "model_version": "v",
         "run_id": "r1"} for i in (0, 7)
    ],
    "clip_labels": [
        {"uri": "s3://b/a.mp4", "clip_index": i, "start_frame": 16 * i, "end_frame": 16 * i + 16,
         "start_s": 0.64 * i, "end_s": 0.64 * i + 0.64, "label": "juggling", "score": 0.75,
         "topk_labels": ["juggling", "archery"], "topk_scores": [0.75, 0.125],
         "model": "r3d_18", "model_version": "v", "run_id": "r1"} for i in (0, 1)
    ],
    "detections": [
        {"uri": "s3://b/a.mp4", "frame_index": 25, "timestamp_s": 1.0, "label": label,
         "score": 0.875, "x1": 10.5, "y1": 20.0, "x2": 110.25, "y2": 220.0,
         "model": "fasterrcnn_mobilenet_v3_large_fpn", "model_version": "v", "run_id": "r1"}
        for label in ("person", "dog")
    ],
    "shots": [
        {"uri": "s3://b/a.mp4", "shot_index": i, "start_frame": start, "end_frame": end,
         "start_s": start / 25, "end_s": end / 25, "detector": "content", "run_id": "r1"}
        for i, (start, end) in enumerate([(0, 40), (40, 300)])
    ] + [
        {"uri": "s3://b/b.mp4", "shot_index": i, "start_frame": start, "end_frame": end,
         "start_s": start / 25, "end_s": end / 25, "detector": "transnetv2", "run_id": "r1",
         "transition_prob": prob, "transition_gradual": gradual}
        for i, (start, end, prob, gradual) in enumerate([(0, 40, None, None),
                                                         (40, 300, 0.75, True)])
    ],
    "runs": [
        {"run_id": "r1", "started_at": _when(5), "finished_at": _when(9), "status": "completed",
         "config": '{"sample": "uniform:8"}',
         "counts": {"videos": 2, "videos_ok": 1, "videos_failed": 1, "units": 3,
                    "units_failed": 0, "units_skipped": 1, "frames": 8},
         "wall_s": 4.5, "frames_per_s": 1.75, "code_version": "vidlake 0.1.0",
         "outputs": [{"table": "frame_labels", "analysis": "frame_labels", "model": "m",
                      "model_version": "v", "analysis_key": "k1"}]},
    ],
    "run_stages": [
        {"run_id": "r1", "stage": stage, "analysis": analysis, "interval_start": _when(5),
         "interval_s": 5.0, "workers": workers, "items_in": 4, "items_out": 3,
         "frames_in": 32, "frames_out": 24, "busy_s": 2.5, "idle_s": idle, "blocked_s": None,
         "frames_per_s": 4.8, "bytes": 0, "queue_p50": 1, "queue_p95": 3, "queue_max": 4,
         "buffer_bytes": None, "utilisation": 0.25, "gpu_utilisation": gpu,
         "gpu_memory_bytes": None}
        for stage, analysis, workers, idle, gpu in [("decode", None, 2, 7.5, None),
                                                     ("analysis", "frame_labels", 1, 2.5, 0.5)]
    ],
    "status_log": [
        {"uri": "s3://b/a.mp4", "content_key": "c1", "size_bytes": 1234, "etag": "e1",
         "analysis": "frame_labels", "model": "m", "model_version": "v", "analysis_key": "k1",
         "status": status, "error": error, "attempts": attempts, "run_id": "r1",
         "updated_at": _when(second)}
        for status, error, attempts, second in [("pending", None, 0, 1),
                                                 ("failed", "cannot read", 1, 2)]
    ],
}


def sample_tables() -> dict[str, pa.Table]:
    return {name: pa.Table.from_pylist(data, schema=TABLES[name])
            for name, data in SAMPLE_ROWS.items()}


def test_sample_rows_cover_every_table():
    assert set(SAMPLE_ROWS) == set(TABLES)


def _outcome(key: str = "video-a") -> UnitOutcome:
    return UnitOutcome(video_key=key, status="ok", error=None, decoder="decord",
                       decoder_n_frames=300, frames=3)


def _lake_files(lake: ParquetLake, folder: str) -> list[str]:
    """Data files (.parquet, .json) under LAKE/<folder>; folder markers are ignored."""
    fs = filesystem(lake.root)
    try:
        found = fs.find(join(fs_path(lake.root), folder))
    except FileNotFoundError:
        return []
    return sorted(p for p in found if p.endswith((".parquet", ".json")))


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_table_round_trips_through_duckdb(lake_root: str, table: str):
    written = sample_tables()[table]
    ParquetLake(lake_root).commit(CommitRecord("c1", "r1"), {table: written})
    back = pa.Table.from_pylist(rows(lake_root, f"select * from {table}"))
    assert back.cast(TABLES[table]).equals(written)


def test_commit_publishes_all_tables_and_records_units(lake_root: str):
    lake = ParquetLake(lake_root)
    record = CommitRecord("c1", "r1", units={"u1": _outcome(), "u2": _outcome()},
                          videos_done=["video-a:key"])
    lake.commit(record, sample_tables())
    assert table_counts(lake_root) == {n: len(SAMPLE_ROWS[n]) for n in TABLES}
    assert sorted(lake.tables()) == sorted(TABLES)
    state = ParquetLake(lake_root).state()
    assert state.unit_outcomes == {"u1": _outcome(), "u2": _outcome()}
    assert state.videos_done == {"video-a:key"}
    assert _lake_files(lake, STAGING_DIR) == []  # nothing left behind on success


def test_shot_files_from_before_the_transition_columns_read_them_as_null(lake_root: str):
    lake = ParquetLake(lake_root)
    lake.commit(CommitRecord("c1", "r1"), {"shots": sample_tables()["shots"]})
    old = pa.Table.from_pylist(SAMPLE_ROWS["shots"][:2])  # as vidlake wrote shots before
    assert "transition_prob" not in old.column_names
    fs, rel = filesystem(lake_root), "shots/part-r0-00001.parquet"
    fs.pipe_file(join(fs_path(lake_root), rel), parquet_bytes(old))
    fs.pipe_file(join(fs_path(lake_root), COMMITS_DIR, "r0-00001.json"),
                 CommitRecord("r0-00001", "r0", files={"shots": rel}).to_json())
    got = rows(lake_root, "select detector, transition_prob, transition_gradual from shots "
                          "order by uri, shot_index, run_id")
    assert [(r["detector"], r["transition_prob"], r["transition_gradual"]) for r in got] == [
        ("content", None, None), ("content", None, None), ("content", None, None),
        ("content", None, None), ("transnetv2", None, None), ("transnetv2", 0.75, True)]


def test_empty_tables_write_no_files(lake_root: str):
    lake = ParquetLake(lake_root)
    empty = pa.Table.from_pylist([], schema=TABLES["frame_labels"])
    lake.commit(CommitRecord("c1", "r1", units={"u1": _outcome()}), {"frame_labels": empty})
    assert lake.tables() == []
    assert set(lake.state().unit_outcomes) == {"u1"}


def test_crash_after_record_is_rolled_forward_exactly_once(lake_root: str):
    tables = sample_tables()
    with pytest.raises(SimulatedCrash):
        CrashBeforePublish(lake_root).commit(CommitRecord("c1", "r1", units={"u1": _outcome()}),
                                             tables)
    lake = ParquetLake(lake_root)  # the next run
    assert table_counts(lake_root) == dict.fromkeys(TABLES, 0)  # readers see nothing yet
    assert len(_lake_files(lake, STAGING_DIR)) == len(TABLES)
    assert set(lake.state().unit_outcomes) == {"u1"}  # committed: never run again
    assert lake.recover() == len(TABLES)
    assert table_counts(lake_root) == {n: len(SAMPLE_ROWS[n]) for n in TABLES}
    assert ParquetLake(lake_root).recover() == 0
    assert table_counts(lake_root) == {n: len(SAMPLE_ROWS[n]) for n in TABLES}
    assert rows(lake_root, "select frame_index from frame_labels order by 1") == [
        {"frame_index": 0}, {"frame_index": 7}, {"frame_index": 299}]


def test_crash_before_record_leaves_nothing_visible_or_done(lake_root: str):
    with pytest.raises(SimulatedCrash):
        CrashBeforeRecord(lake_root).commit(CommitRecord("c1", "r1", units={"u1": _outcome()}),
                                            sample_tables())
    lake = ParquetLake(lake_root)
    assert _lake_files(lake, COMMITS_DIR) == []
    assert lake.state().unit_outcomes == {}  # the units run again
    assert lake.recover() == len(TABLES)  # the staged files of the dead commit go
    assert _lake_files(lake, STAGING_DIR) == []
    assert table_counts(lake_root) == dict.fromkeys(TABLES, 0)
    lake.commit(CommitRecord("c2", "r2", units={"u1": _outcome()}), sample_tables())  # the rerun
    assert table_counts(lake_root) == {n: len(SAMPLE_ROWS[n]) for n in TABLES}


def test_check_writable_creates_the_lake(lake_root: str):
    ParquetLake(lake_root).check_writable()
    assert ParquetLake(lake_root).tables() == []
