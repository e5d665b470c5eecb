"""Shot boundaries on generated edits: every hard cut within one frame, no
false cuts; the same cuts as PySceneDetect on these videos too (fades
included); shots tile the video whatever the unit boundaries; option values
on the old 0-1 scale are refused."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from jobs import label
from pipeline.errors import ConfigError
from pipeline.synthetic.edits import cut_frames, fade_frames
from pipeline.synthetic.video_writer import write_video
from tests.analyses.test_shots_parity import oracle_cuts
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


@pytest.mark.parametrize("method", ["content", "adaptive"])
def test_hard_cuts_found_within_one_frame_and_nothing_else(edits, tmp_path: Path, method):
    folder, truth = edits
    found = _shots(folder, tmp_path / "lake", f"method={method}")
    for name, (lengths, codec, fps) in CUT_VIDEOS.items():
        if method == "adaptive" and codec == "lossless":
            # lossless keeps the scenes' moving noise: every frame changes about as
            # much as a cut, so no cut stands out 3x (PySceneDetect agrees: below)
            continue
        shots = found[name]
        starts = [s["start_frame"] for s in shots[1:]]
        assert len(starts) == len(truth[name]), (name, starts, truth[name])
        assert all(abs(a - b) <= 1 for a, b in zip(starts, truth[name], strict=True))
        _assert_tiles(shots, sum(lengths), fps)
        assert {s["detector"] for s in shots} == {method}


@pytest.mark.parametrize("method", ["content", "adaptive"])
def test_these_edits_cut_as_pyscenedetect_cuts_them(edits, tmp_path: Path, method):
    """Three codecs (H.264, lossless RGB, MPEG-4 Part 2), dissolves and fades
    through black (which PySceneDetect's content detector does cut)."""
    pytest.importorskip("scenedetect")
    folder, _ = edits
    found = _shots(folder, tmp_path / "lake", f"method={method}")
    for name, shots in found.items():
        assert [s["start_frame"] for s in shots[1:]] == oracle_cuts(folder / name, method), name
    videos = by_name(rows(str(tmp_path / "lake"), "select * from videos"))
    assert all(v["status"] == "ok" for v in videos.values())


def test_unit_boundaries_do_not_change_the_cuts(edits, tmp_path: Path):
    """The same video cut into 16-frame units or read whole gives the same shots."""
    folder, _ = edits
    small = _shots(folder, tmp_path / "small", "method=adaptive")
    assert label.main([str(folder), "--output", str(tmp_path / "whole"), "--engine",
                       "sequential", "--analysis", "shots:method=adaptive",
                       "--max-frames-per-unit", "1000"]) == 0
    whole = rows(str(tmp_path / "whole"), "select uri, start_frame from shots order by all")
    assert sorted((r["uri"], r["start_frame"]) for r in whole) == \
        sorted((s["uri"], s["start_frame"]) for shots in small.values() for s in shots)


@pytest.mark.parametrize("option", ["threshold=0.106", "threshold=256", "method=transnet",
                                    "min_content_val=-1", "adaptive_threshold=0",
                                    "min_shot_len=-1", "adaptive=3"])
def test_bad_options_are_refused(edits, tmp_path: Path, option: str):
    """Thresholds on the old 0-1 scale, out of range values, unknown methods and
    the old `adaptive` option are refused before anything runs."""
    folder, _ = edits
    with pytest.raises((ConfigError, SystemExit)):
        code = label.main([str(folder), "--output", str(tmp_path / "lake"), "--engine",
                           "sequential", "--analysis", f"shots:{option}"])
        if code != 0:
            raise SystemExit(code)
    assert not (tmp_path / "lake").exists() or not rows(str(tmp_path / "lake"),
                                                        "select * from shots")
