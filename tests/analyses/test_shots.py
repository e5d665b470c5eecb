"""Shot boundaries on generated edits: every hard cut within one frame, no
false cuts, no cut for a slow fade, no burst for a fast one; shots tile the
video whatever the unit boundaries."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from jobs import label
from pipeline.analyses.shot_detector import content_scores, small_hsv
from pipeline.synthetic.edits import cut_frames, fade_frames
from pipeline.synthetic.video_writer import write_video
from tests.lakes import by_name, rows

# name -> (shot lengths, codec, fps); cuts at the cumulative lengths
CUT_VIDEOS = {
    "cuts_h264.mp4": ([40, 25, 60, 17, 30], "h264", 25.0),
    "cuts_lossless.mkv": ([33, 50, 16, 41], "lossless", 30.0),
    "cuts_mpeg4.avi": ([20, 45, 35], "mpeg4", 24.0),
}


@pytest.fixture(scope="module")
def edits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[int]]]:
    folder = tmp_path_factory.mktemp("edits")
    truth = {}
    for seed, (name, (lengths, codec, fps)) in enumerate(CUT_VIDEOS.items()):
        frames, truth[name] = cut_frames(lengths, seed=seed + 11)
        write_video(folder / name, frames, fps=fps, codec=codec)
    write_video(folder / "slow_dissolve.mp4", fade_frames(30, 45, 30, seed=3), fps=25)
    write_video(folder / "slow_fade_black.mp4",
                fade_frames(30, 40, 30, seed=4, through_black=True), fps=25)
    write_video(folder / "fast_dissolve.mp4", fade_frames(40, 6, 40, seed=5), fps=25)
    return folder, truth


def _shots(folder: Path, lake: Path, *options: str) -> dict[str, list[dict]]:
    analysis = "shots" + (":" + ",".join(options) if options else "")
    assert label.main([str(folder), "--output", str(lake), "--engine", "sequential",
                       "--analysis", analysis, "--max-frames-per-unit", "16"]) == 0
    found: dict[str, list[dict]] = {}
    for row in rows(str(lake), "select * from shots order by uri, shot_index"):
        found.setdefault(str(row["uri"]).rsplit("/", 1)[-1], []).append(row)
    return found


def _assert_tiles(shots: list[dict], n_frames: int, fps: float) -> None:
    assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == n_frames
    assert [s["shot_index"] for s in shots] == list(range(len(shots)))
    for a, b in itertools.pairwise(shots):
        assert a["end_frame"] == b["start_frame"] and a["end_s"] == b["start_s"]
    for shot in shots:
        assert shot["start_s"] == pytest.approx(shot["start_frame"] / fps, abs=1e-3)
    assert shots[-1]["end_s"] == pytest.approx(n_frames / fps, abs=1e-3)


# The generated scenes' moving square wraps around the frame edge now and then:
# a small object teleporting, which adaptive mode's default floor (15/255, as
# in PySceneDetect) takes for a cut; a floor of 0.1 rules it out.
@pytest.mark.parametrize("options", [(), ("adaptive=3", "min_score=0.1")],
                         ids=["content", "adaptive"])
def test_hard_cuts_found_within_one_frame_and_nothing_else(edits, tmp_path: Path, options):
    folder, truth = edits
    found = _shots(folder, tmp_path / "lake", *options)
    for name, (lengths, _, fps) in CUT_VIDEOS.items():
        shots = found[name]
        starts = [s["start_frame"] for s in shots[1:]]
        assert len(starts) == len(truth[name]), (name, starts, truth[name])
        assert all(abs(a - b) <= 1 for a, b in zip(starts, truth[name], strict=True))
        _assert_tiles(shots, sum(lengths), fps)
        assert {s["detector"] for s in shots} == {"adaptive" if options else "content"}


def test_fades_are_not_cuts(edits, tmp_path: Path):
    folder, _ = edits
    found = _shots(folder, tmp_path / "lake")
    assert len(found["slow_dissolve.mp4"]) == 1
    assert len(found["slow_fade_black.mp4"]) == 1
    assert len(found["fast_dissolve.mp4"]) <= 2  # at most one cut, never a burst
    videos = by_name(rows(str(tmp_path / "lake"), "select * from videos"))
    assert all(v["status"] == "ok" for v in videos.values())


def test_unit_boundaries_do_not_change_the_cuts(edits, tmp_path: Path):
    """The same video cut into 16-frame units or read whole gives the same shots."""
    folder, _ = edits
    small = _shots(folder, tmp_path / "small")
    assert label.main([str(folder), "--output", str(tmp_path / "whole"), "--engine",
                       "sequential", "--analysis", "shots", "--max-frames-per-unit", "1000"]) == 0
    whole = rows(str(tmp_path / "whole"), "select uri, start_frame from shots order by all")
    assert sorted((r["uri"], r["start_frame"]) for r in whole) == \
        sorted((s["uri"], s["start_frame"]) for shots in small.values() for s in shots)


def test_scores_ignore_hue_noise_in_the_dark():
    """Near-black pixels whose hue flips (a fade through black) score almost nothing;
    the same hue change in bright pixels is a cut."""
    dark_red = np.full((1, 64, 64, 3), (6, 0, 0), np.uint8)
    dark_blue = np.full((1, 64, 64, 3), (0, 0, 6), np.uint8)
    red = np.full((1, 64, 64, 3), (200, 20, 20), np.uint8)
    blue = np.full((1, 64, 64, 3), (20, 20, 200), np.uint8)
    dark = content_scores(small_hsv(np.concatenate([dark_red, dark_blue])))[1]
    bright = content_scores(small_hsv(np.concatenate([red, blue])))[1]
    assert dark < 0.05 < 0.2 < bright  # the default cut threshold is 0.106
