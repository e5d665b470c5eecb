"""The same analysis twice would write every row twice under one key: refused.
Two of a kind that differ in what they compute are two analyses."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.analyses.shot_detector import ShotOptions
from tests.lakes import rows
from tests.procs import run_cli


def _label(source: Path, lake: Path, *flags: str):
    """`vidlake label` with small frames for the model analyses (shots read
    the video's own size, and refuse a run-wide --size)."""
    shots_only = all(f.startswith("shots") for f in flags if not f.startswith("--"))
    return run_cli("label", str(source), "--output", str(lake), "--engine", "sequential",
                   *(() if shots_only else ("--size", "32")), *flags)


@pytest.mark.parametrize("analyses", [
    ["shots", "shots"],
    ["shots", f"shots:threshold={ShotOptions().threshold!r}"],  # spelled out, still the default
    ["clip_labels:clip_len=4", "clip_labels:clip_len=4"],
    ["frame_labels", "frame_labels:top_k=5"],
], ids=["shots", "shots-default-spelled-out", "clip_labels", "frame_labels"])
def test_the_same_analysis_twice_is_refused(corpus, tmp_path: Path, analyses: list[str]):
    lake = tmp_path / "lake"
    done = _label(corpus("h264.mp4"), lake, *(f for a in analyses for f in ("--analysis", a)))
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("vidlake label: error: --analysis ") and "given twice" in line
    assert not lake.exists()


def test_two_of_a_kind_with_different_options_write_their_own_rows_once(corpus,
                                                                        tmp_path: Path):
    lake = tmp_path / "lake"
    done = _label(corpus("h264.mp4", "lossless.mkv"), lake, "--analysis", "shots",
                  "--analysis", "shots:threshold=30,min_shot_len=5")
    assert done.returncode == 0, done.stderr
    keys = rows(str(lake), "select analysis_key, count(*) as n, count(distinct "
                           "(uri, shot_index)) as shots from shots group by 1")
    assert len(keys) == 2 and all(k["n"] == k["shots"] for k in keys)
    events = rows(str(lake), "select uri, analysis_key, count(*) as n from status_log "
                             "where status = 'done' group by all")
    assert len(events) == 4 and {e["n"] for e in events} == {1}
