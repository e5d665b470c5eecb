"""shots_transnetv2 end to end: on a generated edit (two hard cuts, a dissolve)
the shots tile the video, the cuts are found within one frame, the dissolve
is one gradual transition, and the rows do not depend on the unit size or
the engine."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs import label
from pipeline.analyses.shot_transnet import Transition, transitions
from pipeline.cli.analysis_options import parse_analysis
from pipeline.errors import ConfigError
from pipeline.synthetic.scenes import scene_frames
from pipeline.synthetic.video_writer import write_video
from tests.lakes import rows

FPS = 25.0
CUTS = [40, 100]  # first frames of the shots after hard cuts
DISSOLVE = range(60, 72)  # frames blending the second shot into the third
N_FRAMES = 140
COLUMNS = ("shot_index", "start_frame", "end_frame", "start_s", "end_s", "detector",
           "transition_prob", "transition_gradual")


def _scene(n: int, colour: tuple[int, int, int], seed: int) -> np.ndarray:
    return np.stack(list(scene_frames(n, height=96, width=128, colour=colour, seed=seed)))


def edit_frames() -> np.ndarray:
    """uint8 [140, 96, 128, 3]: a shot, a hard cut at 40, a shot dissolving into
    the next over frames 60..71, a hard cut at 100, a last shot."""
    first = _scene(CUTS[0], (200, 40, 40), 1)
    second = _scene(CUTS[1] - CUTS[0], (40, 200, 60), 2)
    third = _scene(CUTS[1] - CUTS[0], (40, 60, 220), 3)
    t = np.clip((np.arange(len(second)) + CUTS[0] - DISSOLVE[0] + 1) / (len(DISSOLVE) + 1),
                0, 1)[:, None, None, None]
    middle = (second * (1 - t) + third * t).astype(np.uint8)
    return np.concatenate([first, middle, _scene(N_FRAMES - CUTS[1], (220, 220, 40), 4)])


@pytest.fixture(scope="module")
def edit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transnet_edit")
    write_video(folder / "edit.mp4", list(edit_frames()), fps=FPS)
    return folder


def _shots(folder: Path, lake: Path, *flags: str) -> list[dict]:
    assert label.main([str(folder), "--output", str(lake), "--analysis",
                       "shots:method=transnetv2", *flags]) == 0
    found = rows(str(lake), f"select {', '.join(COLUMNS)} from shots order by shot_index")
    return found


def _assert_edit_found(shots: list[dict]) -> None:
    assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == N_FRAMES
    for a, b in itertools.pairwise(shots):
        assert a["end_frame"] == b["start_frame"] and a["end_s"] == b["start_s"]
    for shot in shots:
        assert shot["start_s"] == pytest.approx(shot["start_frame"] / FPS, abs=1e-3)
        assert shot["detector"] == "transnetv2"
    assert shots[0]["transition_prob"] is None and shots[0]["transition_gradual"] is None
    starts = [s["start_frame"] for s in shots[1:]]
    assert len(starts) == 3, starts
    hard = [s for s in shots[1:] if not s["transition_gradual"]]
    gradual = [s for s in shots[1:] if s["transition_gradual"]]
    assert [abs(s["start_frame"] - c) <= 1 for s, c in zip(hard, CUTS, strict=True)] == \
        [True, True], starts
    assert len(gradual) == 1 and gradual[0]["start_frame"] - 1 in DISSOLVE, starts
    assert all(s["transition_prob"] > 0.5 for s in shots[1:])


def test_cuts_within_a_frame_and_the_dissolve_gradual(edit: Path, tmp_path: Path):
    _assert_edit_found(_shots(edit, tmp_path / "lake", "--engine", "sequential",
                              "--max-frames-per-unit", "32"))


@pytest.mark.slow
def test_the_unit_size_does_not_change_the_rows(edit: Path, tmp_path: Path):
    small = _shots(edit, tmp_path / "small", "--engine", "sequential",
                   "--max-frames-per-unit", "7")
    whole = _shots(edit, tmp_path / "whole", "--engine", "sequential",
                   "--max-frames-per-unit", "1000")
    _assert_edit_found(whole)
    assert small == whole


@pytest.mark.usefixtures("ray_session")
def test_on_ray_the_rows_are_the_sequential_ones(edit: Path, tmp_path: Path):
    on_ray = _shots(edit, tmp_path / "ray", "--max-frames-per-unit", "48")
    sequential = _shots(edit, tmp_path / "seq", "--engine", "sequential",
                        "--max-frames-per-unit", "48")
    assert on_ray == sequential
    _assert_edit_found(on_ray)


def test_transitions_join_marked_frames_across_units():
    marked: list[list[Any]] = [[59, 0.9, 0.9, 2.4], [60, 0.1, 0.8, 2.44],  # a hard cut: two frames
              [98, 0.0, 0.7, 3.96], [99, 0.6, 0.9, 4.0], [100, 0.8, 0.9, 4.04],
              [101, 0.2, 0.6, 4.08],  # a gradual one, peak at 100
              [139, 0.9, 0.9, None]]  # the video's last frame: no shot after it
    assert transitions(marked, 0.5) == [Transition(60, 2.4, 0.9, False),
                                        Transition(101, 4.04, 0.8, True)]


def test_the_method_names_the_analysis():
    """`shots:method=transnetv2` is the shots_transnetv2 analysis, with its own
    options; the other methods stay the shots analysis."""
    learned = parse_analysis("shots:method=transnetv2,threshold=0.4")
    assert (learned.kind, learned.options.threshold) == ("shots_transnetv2", 0.4)
    assert parse_analysis("shots:method=adaptive").kind == "shots"
    with pytest.raises(ConfigError, match="threshold"):
        parse_analysis("shots:method=transnetv2,threshold=27")  # the content scale
