"""Parity with PySceneDetect: `shots:method=content` and `method=adaptive` give
the cut frames scenedetect's ContentDetector and AdaptiveDetector (defaults,
PyAV backend) give, on generated edits encoded here and in 16-frame units
(cuts fall on, next to and across unit edges)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import label
from pipeline.synthetic.corpus_builder import write_edited_corpus
from pipeline.synthetic.shot_edits import Shot, edit_frames
from pipeline.synthetic.video_writer import write_video
from tests.lakes import rows

scenedetect = pytest.importorskip("scenedetect")

# name -> (shots, (width, height), codec)
EDITS: dict[str, tuple[list[Shot], tuple[int, int], str]] = {
    # cuts at 16, 32 (unit edges), 47 and 49 (either side of one)
    "hard_cuts.mp4": ([Shot(16), Shot(16), Shot(15), Shot(2), Shot(30)], (160, 90), "h264"),
    "flashes.mp4": ([Shot(40, flashes=((10, 1), (25, 3))), Shot(30, flashes=((5, 2),))],
                    (160, 90), "h264"),
    "short_shots.mkv": ([Shot(20), Shot(5), Shot(3), Shot(12), Shot(1), Shot(25), Shot(8),
                         Shot(20)], (160, 90), "lossless"),
    "fast_pan.mp4": ([Shot(30), Shot(40, content="pan", speed=14), Shot(30)], (160, 90), "h264"),
    "fades.mp4": ([Shot(30, into="fade", transition=10), Shot(30, into="dissolve", transition=12),
                   Shot(25, into="fade", transition=4), Shot(30)], (160, 90), "h264"),
    # wider than 256: PySceneDetect downscales it (to 256x144) before scoring
    "downscaled.mp4": ([Shot(20), Shot(30, into="dissolve", transition=8), Shot(17),
                        Shot(20, flashes=((4, 2),)), Shot(25)], (320, 180), "h264"),
    "portrait.mp4": ([Shot(24), Shot(18), Shot(30)], (144, 288), "h264"),
}


@pytest.fixture(scope="module")
def edits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parity")
    for seed, (name, (shots, (width, height), codec)) in enumerate(EDITS.items()):
        frames, _ = edit_frames(shots, height=height, width=width, seed=seed + 1)
        write_video(folder / name, frames, fps=25, codec=codec)
    return folder


def vidlake_cuts(folder: Path, lake: Path, method: str, unit: int = 16) -> dict[str, list[int]]:
    """Cut frames (first frame of every shot after the first) by video name."""
    assert label.main([str(folder), "--output", str(lake), "--engine", "sequential",
                       "--analysis", f"shots:method={method}",
                       "--max-frames-per-unit", str(unit)]) == 0
    found: dict[str, list[int]] = {}
    for row in rows(str(lake), "select uri, start_frame from shots order by uri, start_frame"):
        found.setdefault(str(row["uri"]).rsplit("/", 1)[-1], []).append(int(row["start_frame"]))
    return {name: starts[1:] for name, starts in found.items()}


def oracle_cuts(path: Path, method: str) -> list[int]:
    """PySceneDetect's cut frames, its detector at its defaults, PyAV decoding."""
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    detector = ContentDetector() if method == "content" else AdaptiveDetector()
    scenes = detect(str(path), detector, backend="pyav")
    return [int(start.frame_num) for start, _ in scenes[1:]]


@pytest.mark.parametrize("method", ["content", "adaptive"])
def test_cuts_are_pyscenedetects(edits: Path, tmp_path: Path, method: str):
    found = vidlake_cuts(edits, tmp_path / "lake", method)
    expected = {name: oracle_cuts(edits / name, method) for name in EDITS}
    assert found == expected


@pytest.mark.slow
@pytest.mark.parametrize("method", ["content", "adaptive"])
def test_the_edited_corpus_cuts_as_pyscenedetect_cuts_it(tmp_path: Path, method: str):
    """The benchmarks' edited corpus (320x240 H.264, downscaled to 256x192 for
    scoring), in units of 50 frames and of 7."""
    truth = write_edited_corpus(tmp_path / "corpus", count=3, seconds=6.0)
    for unit in (50, 7):
        found = vidlake_cuts(tmp_path / "corpus", tmp_path / f"lake{unit}", method, unit)
        assert found == {Path(p).name: oracle_cuts(Path(p), method) for p in truth}
