"""The scale benchmark's synthesis writes lakes a relabel finds complete, and its
figures and fits are what they say (a small lake, local disk, no Ray, no S3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs import benchmark, relabel
from jobs.scale_benchmark import dry_run_todo, growth_exponent, measure, parse_sizes
from jobs.scale_lake import (
    placeholder_uris,
    relabel_argv,
    synthesize,
    write_manifest,
    write_placeholders,
)
from pipeline.lake.lake_check import check_lake
from pipeline.lake.parquet_lake import ParquetLake
from tests.lakes import rows

VIDEOS = 600


def test_growth_exponent_is_the_slope_of_exact_power_laws() -> None:
    sizes = [10_000, 100_000, 1_000_000]
    assert growth_exponent(sizes, [3.0 * n**1.5 for n in sizes]) == pytest.approx(1.5)
    assert growth_exponent(sizes, [0.002 * n for n in sizes]) == pytest.approx(1.0)
    assert growth_exponent(sizes, [7.0, 7.0, 7.0]) == pytest.approx(0.0)
    assert growth_exponent([10, 100], [5.0, 0.5]) == pytest.approx(-1.0)
    assert growth_exponent([10_000], [1.0]) is None  # one size: no slope
    assert growth_exponent([10, 100], [1.0, 0.0]) is None  # log of 0


def test_sizes_parse_and_bad_ones_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_sizes("10000,100_000, 1000000") == [10_000, 100_000, 1_000_000]
    for bad in ("10000,abc", "0", "5,5", "", "1e6"):
        with pytest.raises(ValueError):
            parse_sizes(bad)
    for argv in (["scale", "--videos", "10000,x"], ["decode", "--videos", "10,20"],
                 ["decode", "--videos", "many"]):
        with pytest.raises(SystemExit) as exit_info:
            benchmark.parse_args(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--videos" in err, err
    assert benchmark.parse_args(["scale", "--videos", "600,6000"]).sizes == [600, 6000]
    assert benchmark.parse_args(["decode", "--videos", "12"]).videos == 12
    assert benchmark.parse_args(["decode"]).videos == 0


def test_only_pipeline_vs_loop_joins_a_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert benchmark.parse_args(["pipeline-vs-loop", "--address", "auto"]).address == "auto"
    with pytest.raises(SystemExit) as exit_info:
        benchmark.parse_args(["scale", "--address", "auto"])
    assert exit_info.value.code == 2 and "--address" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["folder", "manifest"])
def test_a_synthesised_lake_is_complete_and_healthy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    videos = str(tmp_path / "videos")
    lake = str(tmp_path / "lake")
    uris = placeholder_uris(videos, VIDEOS)
    write_placeholders(uris)
    source = videos
    if kind == "manifest":
        source = str(tmp_path / "manifest.csv")
        write_manifest(Path(source), uris)
    report = synthesize(source, lake, videos_per_run=256, idle_runs=2, checkpoint_every=3)
    # runs of 256, 256 and 88 videos, one commit each, a runs commit per run, 2 idle runs
    assert (report.videos, report.runs, report.commits) == (VIDEOS, 5, 3 + 5)
    found = ParquetLake(lake).log()  # checkpointed as runs do: 2 checkpoints, 2 commits after
    assert (len(found), found.seq, len(found.tail)) == (report.commits, 2, 2)

    capsys.readouterr()
    assert relabel.main([*relabel_argv(source, lake), "--dry-run"]) == 0
    assert dry_run_todo(capsys.readouterr().out) == (0, VIDEOS)

    health = check_lake(ParquetLake(lake))
    assert health.healthy, [p.line() for p in health.problems]
    assert health.records == report.commits
    assert rows(lake, "select count(*) as n from latest_frame_labels") == [{"n": VIDEOS * 8}]
    assert rows(lake, "select count(*) as n from runs") == [{"n": 5}]


def test_local_storage_calls_and_memory_are_the_childs(tmp_path: Path) -> None:
    videos, lake = str(tmp_path / "videos"), str(tmp_path / "lake")
    write_placeholders(placeholder_uris(videos, 300))
    synthesize(videos, lake, videos_per_run=100)
    ballast = bytearray(768 << 20)  # this process holds 768 MiB...
    ballast[::4096] = b"\1" * len(range(0, len(ballast), 4096))
    measured = measure("jobs.check", [lake], roots=[videos, lake], s3=None, work=tmp_path)
    del ballast
    assert "is healthy" in measured.stdout
    # ...which the child's figure leaves out (a forked child's ru_maxrss would not)
    assert measured.wall_s > 0 and 20 < measured.peak_rss_mib < 700
    # check reads the log (a checkpoint and the records after it) and the footer of
    # every live file, each an open
    files = sum(len(f) for f in ParquetLake(lake).listing().values())
    found = ParquetLake(lake).log()
    assert measured.calls["open"] >= (found.seq > 0) + len(found.tail) + files
    assert measured.requests == sum(v for k, v in measured.calls.items() if k != "entries")
    assert not list(tmp_path.glob("calls-*.json"))  # the counts file is read and removed
    json.dumps(measured.record())
