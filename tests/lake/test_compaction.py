"""Compaction: a partition's small files are merged into one (or a few) without
changing any query result or what the commit log says is done, a crash at any
step leaves results exact, and `vidlake compact` takes the lake's lock. Each
test runs on a local folder and on a SeaweedFS bucket."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import compact as compact_job
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.compaction import bins, compact_lake
from pipeline.lake.lake_lock import LakeLock
from pipeline.lake.lake_state import marker
from pipeline.lake.parquet_lake import COMMITS_DIR, STAGING_DIR, ParquetLake, parquet_bytes
from pipeline.lake.schemas import all_tables
from pipeline.query.duckdb_views import connect
from pipeline.storage import filesystem, fs_path, join

TABLES = all_tables()

V1, V2 = "1.0", "2.0 beta/rc"  # V2 needs quoting in its folder name
V2_FOLDER = f"model_version={urllib.parse.quote(V2, safe='')}"
N_COMMITS = 12
VERSION_OF_COMMIT = [V2, V1, V1, V1, V2, V2, V2, V2, V2, V1, V1, V1]  # 6 each
LATER = [V1, V1]  # versions of two more commits, for tests that add to the lake
SHOTS_KEY = "shots:content@content"
T0 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)
# run ids as `new_run_id()` makes them: a UTC timestamp, then a random suffix
RUN_IDS = [f"{T0 + timedelta(minutes=i):%Y%m%dT%H%M%SZ}-{i:04d}beef"
           for i in range(N_COMMITS + len(LATER))]


class SimulatedCrash(Exception):
    """Raised by a lake that 'dies' at a chosen step of a compaction."""


class CrashBeforeDelete(ParquetLake):
    """Publishes a commit's files, then dies after deleting `survive` removed files."""

    survive = 0

    def _remove(self, path: str) -> None:
        if self.survive <= 0:
            raise SimulatedCrash(path)
        self.survive -= 1
        super()._remove(path)


class CrashBeforeRecord(ParquetLake):
    """Stages a commit's files, then dies before its commit record is written."""

    def _write_atomic(self, path: str, data: bytes) -> None:
        if path.endswith(".json"):
            raise SimulatedCrash(path)
        super()._write_atomic(path, data)


# S3 runs only the tests where S3 behaves differently (publishing is copy then
# delete): each S3 case builds its lake with ~40 PUTs and copies.
LOCAL_ONLY = pytest.mark.parametrize("lake_root", ["local"], indirect=True)


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.slow, pytest.mark.s3])])
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A lake root: a local folder, or a prefix in a fresh SeaweedFS bucket (slow:
    each test commits, compacts and queries dozens of objects)."""
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


# -- a lake of many small commits ---------------------------------------------------------
def _analysis_key(version: str) -> str:
    return f"frame_labels:mobilenet_v3_small@{version}"


def _commit_tables(i: int) -> tuple[CommitRecord, dict[str, pa.Table]]:
    """Commit `i`: run r<i> labels video i % 4 with one model version, cuts its
    shots, and logs its status events and its runs row."""
    video = i % 4
    uri, content = f"s3://media/v{video}.mp4", f"content-{video}"
    version = [*VERSION_OF_COMMIT, *LATER][i]
    key = _analysis_key(version)
    run_id = RUN_IDS[i]
    at = T0 + timedelta(minutes=i)
    frames = [
        {"uri": uri, "frame_index": f, "timestamp_s": f / 25, "label": f"label-{(f + i) % 3}",
         "score": 0.5 + 0.125 * (f % 3), "topk_labels": [f"label-{(f + i) % 3}", "other"],
         "topk_scores": [0.5 + 0.125 * (f % 3), 0.125], "model": "mobilenet_v3_small",
         "model_version": version, "run_id": run_id, "content_key": content,
         "analysis_key": key} for f in range(0, 50, 10)
    ]
    videos = [{"uri": uri, "size_bytes": 1000 + video, "etag": f"e{video}", "status": "ok",
               "error": None, "decoder": "decord", "codec": "h264", "width": 64, "height": 48,
               "fps": 25.0, "n_frames": 50, "duration_s": 2.0, "rotation": 0, "n_sampled": 5,
               "analyses": [f"frame_labels:mobilenet_v3_small@{version}", SHOTS_KEY],
               "model": "mobilenet_v3_small+content", "model_version": f"{version}+content",
               "run_id": run_id, "content_key": content}]
    shots = [{"uri": uri, "shot_index": s, "start_frame": start, "end_frame": end,
              "start_s": start / 25, "end_s": end / 25, "detector": "content",
              "run_id": run_id, "content_key": content, "analysis_key": SHOTS_KEY}
             for s, (start, end) in enumerate([(0, 20 + i), (20 + i, 50)])]
    status = [{"uri": uri, "content_key": content, "size_bytes": 1000 + video,
               "etag": f"e{video}", "analysis": analysis, "model": model,
               "model_version": mv, "analysis_key": akey, "status": state,
               "error": None, "attempts": 0, "run_id": run_id,
               "updated_at": at + timedelta(seconds=offset)}
              for analysis, model, mv, akey in [("frame_labels", "mobilenet_v3_small", version,
                                                  key),
                                                 ("shots", "content", "content", SHOTS_KEY)]
              for state, offset in [("pending", 0), ("done", 1)]]
    runs = [{"run_id": run_id, "started_at": at, "finished_at": at + timedelta(seconds=2),
             "status": "completed", "config": json.dumps({"run": i}),
             "counts": {"videos": 1, "videos_ok": 1, "videos_failed": 0, "units": 1,
                        "units_failed": 0, "units_skipped": 0, "frames": 5},
             "wall_s": 2.0, "frames_per_s": 2.5, "code_version": "vidlake test",
             "outputs": [{"table": "frame_labels", "analysis": "frame_labels",
                          "model": "mobilenet_v3_small", "model_version": version,
                          "analysis_key": key},
                         {"table": "shots", "analysis": "shots", "model": "content",
                          "model_version": "content", "analysis_key": SHOTS_KEY}]}]
    outcome = UnitOutcome(video_key=content, status="ok", error=None, decoder="decord",
                          decoder_n_frames=50, frames=5, summaries={"cuts": [20 + i]})
    record = CommitRecord(
        commit_id=f"{run_id}-00001", run_id=run_id,
        units={f"{content}:{key}:0": outcome, f"{content}:{SHOTS_KEY}:0": outcome},
        videos_done=[marker(content, key), marker(content, SHOTS_KEY)],
        videos_failed={marker(f"content-broken-{i}", key): "cannot decode"} if i == 5 else {},
        uris={content: uri})
    rows = {"frame_labels": frames, "videos": videos, "shots": shots, "status_log": status,
            "runs": runs}
    return record, {name: pa.Table.from_pylist(r, schema=TABLES[name])
                    for name, r in rows.items()}


def build_lake(root: str) -> ParquetLake:
    lake = ParquetLake(root)
    for i in range(N_COMMITS):
        lake.commit(*_commit_tables(i))
    return lake


def _per_folder(files: dict[str, int] | list[str]) -> dict[str, int]:
    """Partition folder -> number of files."""
    counts: dict[str, int] = {}
    for rel in files:
        folder = rel.rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
    return counts


def _live_per_folder(lake: ParquetLake) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in TABLES:
        counts.update(_per_folder(lake.live_files(table)))
    return counts


def _all_files(lake: ParquetLake) -> set[str]:
    return {rel for table in TABLES for rel in lake.files(table)}


FOLDERS = {"frame_labels/model_version=1.0": 6, f"frame_labels/{V2_FOLDER}": 6,
           "videos": 12, "shots": 12, "status_log": 12, "runs": 12}
VIEWS = {"frame_labels", "videos", "shots", "status_log", "runs", "video_status",
         "latest_videos", "latest_frame_labels", "latest_shots"}
QUERIES = {
    "per version": "select model_version, analysis_key, count(*), count(distinct uri), "
                   "min(frame_index), max(frame_index), count(distinct run_id) "
                   "from frame_labels group by all order by all",
    "quoted version": f"select * from frame_labels where model_version = '{V2}' order by all",
    "status counts": "select analysis, status, count(*) from status_log group by all order by all",
    "latest per video": "select v.uri, v.run_id, f.model_version, count(f.frame_index) "
                        "from latest_videos v left join latest_frame_labels f "
                        "using (uri, content_key) group by all order by all",
    "outputs": "select run_id, o.table, o.analysis_key "
               "from (select run_id, unnest(outputs) as o from runs) order by all",
    "distinct rows": "select count(*) from (select distinct * from frame_labels)",
}


def results(root: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every view's rows and count, and a few aggregates and joins, as `vidlake
    query` users read them."""
    con = connect(root)
    views = {r[0] for r in con.execute("select view_name from duckdb_views() "
                                       "where not internal").fetchall()}
    assert views >= VIEWS, f"missing views: {VIEWS - views}"
    out = {}
    for view in sorted(views):
        out[f"{view}: rows"] = con.execute(f"select * from {view} order by all").fetchall()
        out[f"{view}: count"] = con.execute(f"select count(*) from {view}").fetchall()
    for name, sql in QUERIES.items():
        out[name] = con.execute(sql).fetchall()
    return out


@pytest.fixture
def built(lake_root: str) -> Iterator[tuple[ParquetLake, dict[str, list[tuple[Any, ...]]]]]:
    """The lake of N_COMMITS small commits and its query results."""
    lake = build_lake(lake_root)
    yield lake, results(lake_root)


@LOCAL_ONLY
def test_the_lake_under_test_is_what_it_claims(built):
    lake, before = built
    assert _live_per_folder(lake) == FOLDERS
    assert before["frame_labels: count"] == [(N_COMMITS * 5,)]
    assert before["distinct rows"] == [(N_COMMITS * 5,)]
    # v0 only ever had the 2.0 version; the others have both, and the newest
    # run (the last) asked for 1.0
    assert [r[:3] for r in before["latest per video"]] == [
        ("s3://media/v0.mp4", RUN_IDS[8], V2), ("s3://media/v1.mp4", RUN_IDS[9], V1),
        ("s3://media/v2.mp4", RUN_IDS[10], V1), ("s3://media/v3.mp4", RUN_IDS[11], V1)]
    for rel in lake.files("frame_labels"):
        i = next(i for i, run_id in enumerate(RUN_IDS) if f"/part-{run_id}-" in rel)
        version = VERSION_OF_COMMIT[i]
        assert rel.startswith(f"frame_labels/model_version="
                              f"{urllib.parse.quote(version, safe='')}/part-")


def _publish_by_hand(lake: ParquetLake, run_id: str, key: str, table: pa.Table) -> str:
    """Publish `table` as file key `key` of a commit of `run_id`, as an older or
    newer writer would have (no conforming to this contract); its path."""
    fs = filesystem(lake.root)
    commit_id = f"{run_id}-00001"
    rel = f"{key}/part-{commit_id}.parquet"
    fs.makedirs(join(fs_path(lake.root), key), exist_ok=True)
    fs.pipe_file(join(fs_path(lake.root), rel), parquet_bytes(table))
    record = CommitRecord(commit_id, run_id, files={key: rel})
    fs.pipe_file(join(fs_path(lake.root), COMMITS_DIR, f"{commit_id}.json"), record.to_json())
    return rel


def _assert_pure_partitions(lake: ParquetLake) -> None:
    """Every file under model_version=<v>/ holds rows of version v only."""
    fs = filesystem(lake.root)
    for rel in lake.files("frame_labels"):
        folder = rel.rsplit("/", 1)[0].split("/", 1)[1]
        assert folder.startswith("model_version="), rel
        want = urllib.parse.unquote(folder.split("=", 1)[1])
        with fs.open(join(fs_path(lake.root), rel), "rb") as handle:
            got = set(pq.read_table(handle).column("model_version").to_pylist())
        assert got == {want}, rel


# -- compaction ---------------------------------------------------------------------------
def test_compaction_merges_each_partition_into_one_file(built):
    lake, before = built
    state = lake.state()
    n_records = len(lake.log())
    result = compact_lake(lake, target_bytes=128 << 20, min_files=2)
    assert (result.partitions, result.files_removed, result.files_written) == (
        len(FOLDERS), sum(FOLDERS.values()), len(FOLDERS))
    assert result.bytes_merged > 0
    assert _live_per_folder(lake) == dict.fromkeys(FOLDERS, 1)
    assert _per_folder(sorted(_all_files(lake))) == dict.fromkeys(FOLDERS, 1)  # inputs gone
    _assert_pure_partitions(lake)
    assert results(lake.root) == before
    assert ParquetLake(lake.root).state() == state  # nothing is to run again
    records = list(lake.log().records.values())
    assert len(records) == n_records + len(FOLDERS)
    compactions = [r for r in records if r.removed]
    assert len(compactions) == len(FOLDERS)
    for record in compactions:  # a compaction says nothing about units or videos
        assert record.units == {} and record.videos_done == [] and record.videos_failed == {}
    assert ParquetLake(lake.root).recover() == 0
    again = compact_lake(lake, target_bytes=128 << 20, min_files=2)
    assert (again.partitions, again.files_removed) == (0, 0)
    assert results(lake.root) == before


@LOCAL_ONLY
def test_small_target_packs_files_into_several_bins(built):
    lake, before = built
    sizes = lake.live_files("frame_labels")
    small, large = min(sizes.values()), max(sizes.values())
    assert 3 * large < 4 * small, "files too unequal for this test"
    target = 3 * large  # three files fit in a bin, a fourth does not
    result = compact_lake(lake, target_bytes=target, min_files=2, tables=["frame_labels"])
    assert (result.partitions, result.files_removed, result.files_written) == (2, 12, 4)
    assert _live_per_folder(lake) == {**FOLDERS, "frame_labels/model_version=1.0": 2,
                                      f"frame_labels/{V2_FOLDER}": 2}
    _assert_pure_partitions(lake)
    assert results(lake.root) == before


def test_bins_pack_consecutive_files_and_leave_singles():
    files = {"a": 10, "b": 10, "c": 10, "d": 50, "e": 5, "f": 5}
    assert bins(files, 25) == [["a", "b"], ["e", "f"]]  # c and d alone: left as they are
    assert bins(files, 1000) == [list(files)]
    assert bins({}, 25) == []
    assert bins({"a": 1}, 25) == []


@LOCAL_ONLY
def test_nothing_small_or_too_few_files_compacts_nothing(built):
    lake, before = built
    files = _all_files(lake)
    n_records = len(lake.log())
    nothing_small = compact_lake(lake, target_bytes=64, min_files=2)  # every file is big
    too_few = compact_lake(lake, target_bytes=128 << 20, min_files=13)  # 12 per folder
    for result in (nothing_small, too_few):
        assert (result.partitions, result.files_removed, result.files_written) == (0, 0, 0)
    assert _all_files(lake) == files
    assert len(lake.log()) == n_records
    assert results(lake.root) == before


@LOCAL_ONLY
def test_files_of_the_old_layout_are_merged_into_partitions(built):
    """Files from before partitioning (LAKE/frame_labels/part-*.parquet, without
    the content_key and analysis_key columns) move into model_version folders."""
    lake, _ = built
    old_schema = pa.schema([f for f in TABLES["frame_labels"]
                            if f.name not in ("content_key", "analysis_key")])
    for n in range(2):
        run_id = f"20240101T00000{n}Z-0000old{n}"
        rows = [{"uri": "s3://media/old.mp4", "frame_index": f, "timestamp_s": f / 25,
                 "label": "old", "score": 0.25, "topk_labels": ["old"], "topk_scores": [0.25],
                 "model": "mobilenet_v3_small", "model_version": version, "run_id": run_id}
                for f, version in enumerate([V1, V2, V1])]
        _publish_by_hand(lake, run_id, "frame_labels",
                         pa.Table.from_pylist(rows, schema=old_schema))
    before = results(lake.root)
    assert before["frame_labels: count"] == [(N_COMMITS * 5 + 6,)]
    first = compact_lake(lake, min_files=2, tables=["frame_labels"])
    assert first.partitions == 3
    assert "frame_labels" not in _live_per_folder(lake)  # nothing left outside partitions
    _assert_pure_partitions(lake)
    assert results(lake.root) == before
    compact_lake(lake, min_files=2, tables=["frame_labels"])
    assert {k: v for k, v in _live_per_folder(lake).items()
            if k.startswith("frame_labels")} == {"frame_labels/model_version=1.0": 1,
                                                 f"frame_labels/{V2_FOLDER}": 1}
    assert results(lake.root) == before


# -- crashes ------------------------------------------------------------------------------
@LOCAL_ONLY
@pytest.mark.parametrize("survive", [0, 2])
def test_crash_before_the_inputs_are_deleted(built, survive: int):
    lake, before = built
    state = lake.state()
    crashing = CrashBeforeDelete(lake.root)
    crashing.survive = survive
    with pytest.raises(SimulatedCrash):
        compact_lake(crashing, min_files=2)
    # the first partition's merged file is published beside what is left of its inputs
    v1 = "frame_labels/model_version=1.0"
    assert _per_folder(lake.files("frame_labels"))[v1] == 6 + 1 - survive
    assert _live_per_folder(lake) == {**FOLDERS, v1: 1}
    assert results(lake.root) == before  # a reader sees each row once
    assert ParquetLake(lake.root).state() == state
    fresh = ParquetLake(lake.root)  # the next run
    assert fresh.recover() == 6 - survive  # the inputs are deleted
    assert _per_folder(fresh.files("frame_labels"))[v1] == 1
    assert results(lake.root) == before
    assert fresh.recover() == 0
    compact_lake(fresh, min_files=2)  # and the rest is compacted
    assert _live_per_folder(fresh) == dict.fromkeys(FOLDERS, 1)
    assert results(lake.root) == before
    assert fresh.state() == state


def _staged(lake: ParquetLake) -> list[str]:
    fs = filesystem(lake.root)
    try:
        found = fs.find(join(fs_path(lake.root), STAGING_DIR))
    except FileNotFoundError:
        return []
    return sorted(p for p in found if p.endswith(".parquet"))


@LOCAL_ONLY
def test_crash_before_the_commit_record_changes_nothing(built):
    lake, before = built
    files = _all_files(lake)
    n_records = len(lake.log())
    with pytest.raises(SimulatedCrash):
        compact_lake(CrashBeforeRecord(lake.root), min_files=2)
    assert len(_staged(lake)) == 1  # the merged file, staged where nobody reads
    assert _all_files(lake) == files
    assert len(lake.log()) == n_records
    assert results(lake.root) == before
    fresh = ParquetLake(lake.root)
    assert fresh.recover() == 1  # the staged merged file of the dead commit is deleted
    assert _staged(fresh) == []
    assert results(lake.root) == before
    compact_lake(fresh, min_files=2)
    assert _live_per_folder(fresh) == dict.fromkeys(FOLDERS, 1)
    assert results(lake.root) == before


def test_a_publish_interrupted_after_its_copy_is_not_resurrected(built):
    """On S3 a publish is copy-then-delete: a run killed in between leaves the
    staged copy beside the published file. Once compaction merged that file
    away, a later recover() must not put the staged copy back (rows twice)."""
    lake, before = built
    record, _ = _commit_tables(3)
    key = "frame_labels/model_version=1.0"
    fs = filesystem(lake.root)
    published = join(fs_path(lake.root), f"{key}/part-{record.commit_id}.parquet")
    leftover = join(fs_path(lake.root), STAGING_DIR, record.commit_id,
                    key.replace("/", "~") + ".parquet")
    fs.makedirs(leftover.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(leftover, fs.cat_file(published))
    assert results(lake.root) == before
    # the published file is in place: the staged copy is deleted, not moved
    assert ParquetLake(lake.root).recover() == 1
    assert _staged(lake) == []
    compact_lake(lake, min_files=2)
    ParquetLake(lake.root).recover()
    assert results(lake.root) == before
    assert _staged(lake) == []
    assert _per_folder(lake.files("frame_labels"))[key] == 1
    # the merged file is merged again with newer ones: still no row twice
    for i in range(N_COMMITS, N_COMMITS + len(LATER)):
        lake.commit(*_commit_tables(i))
    compact_lake(lake, min_files=2)
    ParquetLake(lake.root).recover()
    after = results(lake.root)
    total = [((N_COMMITS + len(LATER)) * 5,)]
    assert after["frame_labels: count"] == after["distinct rows"] == total


@LOCAL_ONLY
def test_files_outside_the_contract_are_left_as_they_are(built):
    """A file with a column the contract lacks (a newer writer's) or with a
    column of another type would lose data if conformed: it is not merged."""
    lake, _ = built
    key = "frame_labels/model_version=1.0"
    schema = TABLES["frame_labels"]
    frames = _commit_tables(1)[1]["frame_labels"]
    newer = frames.append_column("blur", pa.array([0.5] * frames.num_rows, pa.float32()))
    wider = frames.set_column(schema.get_field_index("score"), "score",
                              pa.array([0.1] * frames.num_rows, pa.float64()))
    odd = {_publish_by_hand(lake, "20260101T000000Z-newer000", key, newer),
           _publish_by_hand(lake, "20260101T000001Z-wider000", key, wider)}
    before = results(lake.root)
    assert before["frame_labels: count"] == [((N_COMMITS + 2) * 5,)]
    result = compact_lake(lake, min_files=2)
    assert result.files_removed == sum(FOLDERS.values())
    assert odd <= set(lake.files("frame_labels"))
    assert _live_per_folder(lake) == {**dict.fromkeys(FOLDERS, 1), key: 3}
    assert results(lake.root) == before
    con = connect(lake.root)
    assert con.execute("select count(*) from frame_labels where blur = 0.5").fetchall() == [(5,)]


@LOCAL_ONLY
def test_a_reader_racing_a_compaction_sees_each_row_once(built, monkeypatch):
    lake, before = built
    listed = ParquetLake.file_sizes
    compacted: list[bool] = []

    def compact_first(self: ParquetLake, name: str) -> dict[str, int]:
        if not compacted:
            compacted.append(True)
            with pytest.raises(SimulatedCrash):  # published, inputs not deleted yet
                compact_lake(CrashBeforeDelete(lake.root), min_files=2)
        return listed(self, name)

    monkeypatch.setattr(ParquetLake, "file_sizes", compact_first)
    con = connect(lake.root)  # took the commit log, then lists the files
    monkeypatch.undo()
    assert con.execute("select count(*) from frame_labels").fetchall() == \
        before["frame_labels: count"]


# -- vidlake compact ----------------------------------------------------------------------
@LOCAL_ONLY
def test_cli_compacts_once_then_finds_nothing(built, capsys):
    lake, before = built
    assert compact_job.main([lake.root, "--min-files", "2"]) == 0
    out = capsys.readouterr().out
    assert f"compacted {len(FOLDERS)} partitions: {sum(FOLDERS.values())} files" in out
    assert out.rstrip().endswith(f"into {len(FOLDERS)}")
    assert _live_per_folder(lake) == dict.fromkeys(FOLDERS, 1)
    assert results(lake.root) == before
    assert compact_job.main([lake.root, "--min-files", "2"]) == 0
    assert "compacted 0 partitions: 0 files" in capsys.readouterr().out
    # the lock was released: a label run can take it
    with LakeLock(lake.root, run_id="run-after", purpose="label", wait_s=0) as lock:
        assert lock.generation == 3


@LOCAL_ONLY
def test_cli_refuses_while_another_run_holds_the_lock(built, capsys):
    lake, before = built
    files = _all_files(lake)
    with LakeLock(lake.root, run_id="run-labelling", purpose="label"):
        assert compact_job.main([lake.root, "--min-files", "2"]) == 3
    err = capsys.readouterr().err
    assert "run-labelling" in err
    assert _all_files(lake) == files
    assert results(lake.root) == before


def test_cli_rejects_bad_flags(tmp_path: Path, capsys):
    lake = tmp_path / "lake"
    with pytest.raises(SystemExit) as refused:  # argparse checks the number's range
        compact_job.main([str(lake), "--min-files", "1"])
    assert refused.value.code == 2
    assert compact_job.main([str(lake), "--table", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert not lake.exists()  # refused before touching the lake
