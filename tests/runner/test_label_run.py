"""`vidlake label --engine sequential`: the whole flow in one process, no Ray.

Same invariants as the Ray runs (tests/runner/test_label_ray.py), fast enough
to run on every change: nothing lost, exactly once, incremental reruns.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from jobs import label
from pipeline.config import ExecutionSpec, FrameSize, LabelConfig, ModelSpec, SampleSpec
from pipeline.runner.label_run import run_label
from tests.fault_injection import SimulatedCrash
from tests.lakes import assert_corpus_accounted, rows, table_counts
from tests.media import BAD, GOOD

SAMPLE = "uniform:6"


def _label(source: Path, lake: Path, *extra: str) -> int:
    return label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--sample", SAMPLE, "--size", "64", "--max-frames-per-unit", "4", *extra])


def test_every_input_accounted_and_rerun_adds_nothing(corpus, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]):
    names = sorted([*GOOD, *BAD])
    source, lake = corpus(*names), tmp_path / "lake"
    assert _label(source, lake) == 0
    assert "completed" in capsys.readouterr().out
    assert_corpus_accounted(str(lake), names, SAMPLE)
    (run,) = rows(str(lake), "select * from runs")
    assert run["status"] == "completed"
    assert run["counts"] | {"videos": len(names), "videos_ok": len(GOOD),
                            "videos_failed": len(BAD)} == run["counts"]
    assert run["counts"]["frames"] == table_counts(str(lake))["frame_labels"]
    assert json.loads(run["config"])["sample"] == SAMPLE
    assert {r["run_id"] for r in rows(str(lake), "select run_id from videos")} == {run["run_id"]}
    before = table_counts(str(lake))

    assert _label(source, lake) == 0  # nothing to do: adds no rows, not even a runs row
    assert table_counts(str(lake)) == before
    assert "0 videos" in capsys.readouterr().out


def test_new_video_is_the_only_work_of_the_next_run(corpus, media: Path, tmp_path: Path):
    source, lake = corpus("h264.mp4", "empty.mp4"), tmp_path / "lake"
    assert _label(source, lake) == 0
    (source / "lossless.mkv").write_bytes((media / "lossless.mkv").read_bytes())
    assert _label(source, lake) == 0
    assert_corpus_accounted(str(lake), ["h264.mp4", "empty.mp4", "lossless.mkv"], SAMPLE)
    runs = rows(str(lake), "select run_id, counts from runs order by started_at")
    assert [r["counts"]["videos"] for r in runs] == [2, 1]
    (new,) = rows(str(lake), "select run_id from videos where uri like '%lossless.mkv'")
    assert new["run_id"] == runs[1]["run_id"]


def test_other_settings_are_new_work_in_the_same_lake(corpus, tmp_path: Path):
    source, lake = corpus("h264.mp4"), tmp_path / "lake"
    assert _label(source, lake) == 0
    assert label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--sample", "every:10", "--size", "64"]) == 0
    counts = rows(str(lake), "select run_id, count(*) as n from frame_labels group by 1")
    assert sorted(r["n"] for r in counts) == [5, 6]  # every:10 of 50 frames; uniform:6
    assert table_counts(str(lake))["videos"] == 2


def test_crashed_run_is_recorded_and_the_rerun_finishes_exactly_once(corpus, media: Path,
                                                                     tmp_path: Path):
    source, lake = corpus("h264.mp4", "lossless.mkv"), tmp_path / "lake"
    (source / "z-CRASH.mp4").write_bytes((media / "h264.mkv").read_bytes())
    config = LabelConfig(
        source=str(source), output=str(lake), model=ModelSpec("mobilenet_v3_small"),
        sample=SampleSpec.parse(SAMPLE), size=FrameSize(64, 64),
        execution=ExecutionSpec(engine="sequential", max_frames_per_unit=4,
                                decoder_path="tests.fault_injection:crash_on_marker"))
    with pytest.raises(SimulatedCrash):
        run_label(config)
    assert [r["status"] for r in rows(str(lake), "select status from runs")] == ["failed"]
    assert table_counts(str(lake))["frame_labels"] == 0  # the crashed batch left nothing

    rerun = dataclasses.replace(config, execution=ExecutionSpec(engine="sequential",
                                                                max_frames_per_unit=4))
    assert run_label(rerun).status == "completed"
    statuses = rows(str(lake), "select status from runs order by started_at")
    assert [r["status"] for r in statuses] == ["failed", "completed"]
    videos = rows(str(lake), "select status from videos")
    assert [v["status"] for v in videos] == ["ok", "ok", "ok"]
    labels = rows(str(lake), "select uri, frame_index from frame_labels")
    assert len(labels) == 18 and len({(r["uri"], r["frame_index"]) for r in labels}) == 18
