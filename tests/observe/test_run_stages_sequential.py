"""run_stages and the runs row's totals from a sequential run (no Ray)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobs import label
from tests.lakes import rows


def test_rows_sum_to_the_run_and_the_summary_names_the_busiest_stage(corpus, tmp_path: Path,
                                                                     capsys):
    source, lake = corpus("h264.mp4", "lossless.mkv", "text.mkv"), tmp_path / "lake"
    assert label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--sample", "uniform:4", "--size", "32", "--analysis", "frame_labels",
                       "--analysis", "shots", "--max-frames-per-unit", "2"]) == 0
    out = capsys.readouterr().out
    (run,) = rows(str(lake), "select * from runs")
    counts = run["counts"]
    sums = {(r["stage"], r["analysis"]): r for r in rows(str(lake), """
        select stage, analysis, sum(items_in) items_in, sum(items_out) items_out,
               sum(frames_out) frames_out, sum(busy_s) busy_s, max(workers) workers
        from run_stages group by all""")}
    assert sums[("list", None)]["items_out"] == 3
    assert sums[("probe", None)]["items_out"] == 3
    assert sums[("commit", None)]["items_out"] == counts["units"]
    assert sums[("commit", None)]["frames_out"] == counts["frames"]
    assert sums[("decode", None)]["frames_out"] == counts["frames"]
    assert sums[("analysis", "frame_labels")]["frames_out"] == 8
    assert sums[("analysis", "shots")]["items_out"] > 0  # shots read every frame: its own count
    assert {r["workers"] for r in sums.values()} == {1}
    stages = {(t["stage"], t["analysis"]): t for t in run["stages"]}
    assert {k: t["busy_s"] for k, t in stages.items()} == pytest.approx(
        {k: r["busy_s"] for k, r in sums.items()})
    assert run["cpu_hours"] == pytest.approx((os.cpu_count() or 1) * run["wall_s"] / 3600)
    (ok,) = rows(str(lake), "select sum(duration_s) s from videos where status = 'ok'")
    assert run["video_hours"] == pytest.approx(ok["s"] / 3600)
    assert f"bottleneck: {run['bottleneck']}" in out
    assert "sequential engine" in run["bottleneck"]
    assert "video-hours per CPU-hour" in out
