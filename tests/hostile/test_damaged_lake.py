"""Damaged lakes: a truncated file, a deleted file, a corrupt commit record.
One damaged file or table never hides the rest (query), writers refuse a
damaged log with one line (exit 2), compaction skips what it cannot read, and
`vidlake check --repair` then `vidlake relabel` brings every row back exactly
once. Real lakes (sequential engine, shots), real DuckDB, CLI subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from jobs import check as check_job
from jobs import query as query_job
from pipeline.errors import LakeDamaged
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.lake_check import check_lake
from pipeline.lake.lake_repair import repair_lake
from pipeline.lake.lake_state import LakeState, marker
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import all_tables
from tests.conftest import S3Server
from tests.hostile.damaged_lakes import (
    FIRST_RUN,
    LABEL_ARGS,
    SHOTS_PER_VIDEO,
    build_lake,
    copy_lake,
    data_file,
    error_lines,
    label,
    latest_video_counts,
    record_file,
    shot_counts,
    truncate,
    uncheckpoint,
    vidlake,
    write_videos,
)

TABLES = all_tables()

ALL_SHOTS = {(name, i): 1 for name, n in SHOTS_PER_VIDEO.items() for i in range(n)}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_videos(tmp_path_factory.mktemp("damaged") / "videos")


@pytest.fixture(scope="module")
def pristine(source: Path) -> Path:
    """The lake of two runs over `source`, never damaged (tests damage copies)."""
    lake = build_lake(source, source.parent / "pristine")
    assert shot_counts(lake) == ALL_SHOTS
    return lake


@pytest.fixture
def lake(pristine: Path, tmp_path: Path) -> Path:
    return copy_lake(pristine, tmp_path / "lake")


def _assert_restored(source: Path, lake: Path) -> None:
    """check says healthy, and after a relabel (same analyses) every shot row is
    there exactly once (in this process: the CLI's exit codes are tested above)."""
    assert check_job.main([str(lake)]) == 0
    label(str(source), lake, "relabel")
    assert shot_counts(lake) == ALL_SHOTS
    assert latest_video_counts(lake) == dict.fromkeys(SHOTS_PER_VIDEO, 1)
    assert check_job.main([str(lake)]) == 0


# -- query -------------------------------------------------------------------------------
def test_truncated_table_file_hides_only_its_table(lake: Path):
    bad = data_file(lake, "shots", 1)
    truncate(bad)
    rel = f"shots/{bad.name}"
    code, out, err = vidlake("query", str(lake), "SELECT count(*) AS n FROM videos",
                             "--format", "csv")
    assert (code, out.splitlines()) == (0, ["\"n\"", "4"]), err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "shots" in warnings[0] and rel in warnings[0]
    assert f"vidlake check {lake}" in warnings[0]
    for sql in ("SELECT count(*) FROM shots", "SELECT * FROM latest_shots"):
        code, _, err = vidlake("query", str(lake), sql)
        (line,) = error_lines(err, "query")
        assert code == 2 and "shots" in line and rel in line, err
        assert "Did you mean" not in err and "Traceback" not in err


def test_no_lake_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    nothing, empty, staging_only = (tmp_path / n for n in ("nothing", "empty", "staging-only"))
    empty.mkdir()
    (staging_only / "_staging").mkdir(parents=True)
    for argv in (("query", str(nothing), "SELECT 1"), ("check", str(empty))):
        code, _, err = vidlake(*argv)
        (line,) = error_lines(err, argv[0])
        assert code == 2 and f"no lake at {argv[1]} (" in line, err
    for path in (nothing, empty, staging_only):  # in this process: quicker
        capsys.readouterr()
        assert query_job.main([str(path), "SELECT 1"]) == 2
        assert check_job.main([str(path)]) == 2
        err = capsys.readouterr().err
        for command in ("query", "check"):
            (line,) = error_lines(err, command)
            assert line.startswith(f"vidlake {command}: error: no lake at {path} (")


# -- a damaged commit log -----------------------------------------------------------------
@pytest.mark.parametrize("blob", [b"", b"{\"commit_id\": \"x\", \"units\": {\"u\": ", b"[1, 2]",
                                  b"{\"commit_id\": 5, \"run_id\": \"r\"}",
                                  b"{\"commit_id\": \"c\", \"run_id\": \"r\", \"units\": [1]}",
                                  b"\xff\xfe garbage"])
def test_damaged_records_are_named_never_raised(tmp_path: Path, blob: bytes):
    lake = ParquetLake(str(tmp_path / "lake"))
    lake.commit(CommitRecord("c1", "r1", units={"u1": _outcome("k1")}), {})
    (tmp_path / "lake" / "_commits" / "c0.json").write_bytes(blob)
    found, damaged = lake.read_log()
    assert [r.commit_id for r in found.tail] == ["c1"] and list(damaged) == ["_commits/c0.json"]
    with pytest.raises(LakeDamaged, match=r"_commits/c0\.json.*vidlake check .* --repair"):
        lake.log()


def test_corrupt_record_query_warns_writers_refuse(lake: Path, source: Path):
    record = record_file(lake, 1)
    record.write_bytes(record.read_bytes()[:150])  # a truncated JSON
    rel = f"_commits/{record.name}"
    code, out, err = vidlake("query", str(lake), "SELECT count(*) AS n FROM shots",
                             "--format", "csv")
    assert (code, out.splitlines()[1:]) == (0, [str(len(ALL_SHOTS))]), err
    assert rel in err and "warning" in err
    for command in (("relabel", str(source), "--output", str(lake), *LABEL_ARGS, "--dry-run"),
                    ("label", str(source), "--output", str(lake), *LABEL_ARGS),
                    ("compact", str(lake))):
        code, out, err = vidlake(*command)
        (line,) = error_lines(err, command[0])
        assert code == 2 and rel in line and "--repair" in line, err
        assert "Traceback" not in err


# -- compaction ------------------------------------------------------------------------------
def test_compact_skips_an_unreadable_file(lake: Path):
    bad = data_file(lake, "shots", 0)
    truncate(bad)
    code, out, err = vidlake("compact", str(lake))
    assert code == 0 and "Traceback" not in err, err
    assert f"skipped shots/{bad.name}" in out
    assert bad.exists() and len(list((lake / "shots").glob("*.parquet"))) == 2  # alone: kept
    assert len(list((lake / "videos").glob("*.parquet"))) == 1  # the rest was compacted


# -- check and repair ------------------------------------------------------------------------
@pytest.mark.parametrize("compacted", [False, True])
def test_deleted_file_is_reported_repaired_and_redone(lake: Path, source: Path,
                                                      compacted: bool):
    if compacted:
        assert vidlake("compact", str(lake))[0] == 0
        (lost,) = (lake / "shots").glob("part-compact-*.parquet")
        held = set(SHOTS_PER_VIDEO)
    else:
        lost = data_file(lake, "shots", 1)
        held = set(SHOTS_PER_VIDEO) - set(FIRST_RUN)
    lost.unlink()
    code, out, err = vidlake("check", str(lake))
    (line,) = [line for line in out.splitlines() if line.startswith("missing")]
    assert code == 1 and f"shots/{lost.name}" in line, out + err
    assert {name for name in SHOTS_PER_VIDEO if f"/{name}" in line} == held
    assert "damaged: 1 problem (1 missing)" in out.splitlines()[-1]
    code, out, err = vidlake("check", str(lake), "--repair")
    assert code == 0 and "is healthy" in out.splitlines()[-1], out + err
    _assert_restored(source, lake)


@pytest.mark.parametrize("compacted", [False, True])
def test_corrupt_record_is_set_aside_and_redone(lake: Path, source: Path, compacted: bool):
    if compacted:  # the record's files are merged into files holding run 0's rows too
        assert vidlake("compact", str(lake))[0] == 0
        uncheckpoint(lake)  # a lake compacted by a vidlake without checkpoints
    record = record_file(lake, 1)
    record.write_text("garbage")
    code, out, err = vidlake("check", str(lake))
    assert code == 1 and f"damaged-record _commits/{record.name}" in out, out + err
    code, out, err = vidlake("check", str(lake), "--repair")
    assert code == 0, out + err
    assert (lake / "_damaged" / "_commits" / record.name).read_text() == "garbage"
    _assert_restored(source, lake)


def test_damaged_checkpoint_writers_refuse_and_the_repair_rebuilds_it(lake: Path,
                                                                       source: Path):
    assert vidlake("compact", str(lake))[0] == 0  # compaction checkpoints the log
    (folded,) = (lake / "_commits").glob("checkpoint-*.parquet")
    truncate(folded)
    rel = f"_commits/{folded.name}"
    code, out, err = vidlake("relabel", str(source), "--output", str(lake), *LABEL_ARGS)
    (line,) = error_lines(err, "relabel")
    assert code == 2 and rel in line and "--repair" in line, err
    code, out, err = vidlake("check", str(lake))
    assert code == 1 and f"damaged-checkpoint {rel}" in out, out + err
    code, out, err = vidlake("check", str(lake), "--repair")
    assert code == 0, out + err
    assert (lake / "_damaged" / rel).exists()
    _assert_restored(source, lake)


def test_lost_videos_file_and_truncated_shots_file(lake: Path, source: Path):
    """A lost `videos` file retires its videos' markers and takes their rows out
    of the (healthy) shots file; a truncated file is moved to _damaged/."""
    data_file(lake, "videos", 1).unlink()
    broken = data_file(lake, "shots", 0)
    truncate(broken)
    result = repair_lake(ParquetLake(str(lake)))
    assert result.moved == [f"_damaged/shots/{broken.name}"]
    assert (lake / "_damaged" / "shots" / broken.name).exists()
    assert result.rewritten == [f"shots/{data_file(lake, 'shots', 1).name}"]
    assert result.rows_dropped == sum(SHOTS_PER_VIDEO[n] for n in SHOTS_PER_VIDEO
                                      if n not in FIRST_RUN)
    assert len(result.retired_markers) == len(SHOTS_PER_VIDEO)  # one shots marker each
    assert check_lake(ParquetLake(str(lake))).healthy
    _assert_restored(source, lake)


# -- the commit log's order ------------------------------------------------------------------
def _outcome(video_key: str) -> UnitOutcome:
    return UnitOutcome(video_key=video_key, status="ok", error=None, decoder="decord",
                       decoder_n_frames=10, frames=2)


def test_retirements_apply_in_commit_order_and_old_records_still_parse():
    done = CommitRecord("20250101T000000Z-aaaaaaaa-00000", "r", units={"u1": _outcome("k")},
                        videos_done=["k:a"])
    retire = CommitRecord("20250101T000000Z-zrepair-00000000", "x", retired_markers=["k:a"],
                          retired_units=["u1"])
    redo = CommitRecord("20250101T000001Z-bbbbbbbb-00000", "r2", units={"u1": _outcome("k")},
                        videos_done=["k:a"])
    assert LakeState.of([retire, done]).videos_done == set()  # input order does not matter
    assert LakeState.of([retire, done]).unit_outcomes == {}
    assert LakeState.of([redo, retire, done]).videos_done == {"k:a"}
    old = json.loads(done.to_json())
    assert "retired_markers" not in old  # ordinary records are written as before
    assert CommitRecord.from_json(json.dumps(old).encode()) == done
    assert CommitRecord.from_json(retire.to_json()) == retire


def _two_model_versions(lake: ParquetLake) -> None:
    """Video `ca` labelled by model versions v1 (key1) and v2 (key2), one commit each."""
    for version, key in (("v1", "key1"), ("v2", "key2")):
        frames = pa.Table.from_pylist(
            [{"uri": "/v/a.mp4", "frame_index": i, "model": "m", "model_version": version,
              "run_id": f"run-{version}", "content_key": "ca", "analysis_key": key}
             for i in range(3)], schema=TABLES["frame_labels"])
        status = pa.Table.from_pylist(
            [{"uri": "/v/a.mp4", "content_key": "ca", "analysis": "frame_labels",
              "model_version": version, "analysis_key": key, "status": "done"}],
            schema=TABLES["status_log"])
        lake.commit(CommitRecord(f"20250101T00000{version[1]}Z-cafe0000-00000", "r",
                                 units={f"u-{version}": _outcome("ca")},
                                 videos_done=[marker("ca", key)], uris={"ca": "/v/a.mp4"}),
                    {"frame_labels": frames, "status_log": status})


def test_repair_retires_only_the_lost_model_version(tmp_path: Path):
    """frame_labels is split by model version: losing one version's file retires
    that version's marker only, and the other version's rows stay."""
    lake = ParquetLake(str(tmp_path / "lake"))
    _two_model_versions(lake)
    (lost,) = (tmp_path / "lake" / "frame_labels" / "model_version=v1").glob("*.parquet")
    lost.unlink()
    result = repair_lake(lake)
    assert result.retired_markers == [marker("ca", "key1")]
    assert result.rewritten == []  # v2's rows are still done: kept as they are
    assert lake.state().videos_done == {marker("ca", "key2")}
    assert check_lake(lake).healthy


@pytest.mark.slow  # starts the S3 server when no other test has
def test_check_and_repair_on_s3(s3_server: S3Server, s3_bucket: str):
    """The same on object storage, where moving aside is copy then delete: a
    deleted file and a corrupt record are found, set aside and retired."""
    root = f"s3://{s3_bucket}/lake"
    lake = ParquetLake(root)
    _two_model_versions(lake)
    extra = pa.Table.from_pylist([{"uri": "/v/b.mp4", "shot_index": 0, "content_key": "cb",
                                   "analysis_key": "shots1"}], schema=TABLES["shots"])
    lake.commit(CommitRecord("20250101T000003Z-beef0000-00000", "r"), {"shots": extra})
    fs = s3_server.filesystem()
    fs.pipe_file(f"{s3_bucket}/lake/_commits/20250101T000003Z-beef0000-00000.json", b"{")
    (lost,) = fs.find(f"{s3_bucket}/lake/frame_labels/model_version=v1")
    fs.rm_file(lost)
    found = {(p.kind, p.path.split("/")[0]) for p in check_lake(lake).problems}
    assert found == {("damaged-record", "_commits"), ("missing", "frame_labels")}
    result = repair_lake(lake)
    assert sorted(result.moved) == ["_damaged/_commits/20250101T000003Z-beef0000-00000.json",
                                    "_damaged/shots/part-20250101T000003Z-beef0000-00000.parquet"]
    assert result.retired_markers == [marker("ca", "key1")]
    assert check_lake(lake).healthy
