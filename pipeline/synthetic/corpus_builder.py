"""Write synthetic corpora: labelled motion clips for the demo, many short clips
for the benchmark, edited videos with known cuts, and the bad files every run
must survive."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.synthetic.scenes import SCENE_COLOURS, scene_frames
from pipeline.synthetic.video_writer import write_video

log = logging.getLogger(__name__)


def write_bad_files(root: Path, good_video: Path) -> list[Path]:
    """Zero-byte, not-a-video, truncated and corrupt files with video extensions."""
    root.mkdir(parents=True, exist_ok=True)
    data = good_video.read_bytes()
    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    text = root / "notes.mkv"
    text.write_text("this is a text file, not a video\n")
    truncated = root / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = root / "corrupt.mp4"
    middle = len(data) // 2
    corrupt.write_bytes(data[:middle] + bytes(range(256)) * 16 + data[middle + 4096 :])
    return [empty, text, truncated, corrupt]


def write_benchmark_corpus(root: Path, *, count: int, seconds: float = 5.0, fps: int = 25,
                           width: int = 320, height: int = 240, gop: int = 25) -> list[Path]:
    """`count` H.264 clips, a keyframe every `gop` frames (cached: existing files
    are kept)."""
    root.mkdir(parents=True, exist_ok=True)
    colours = list(SCENE_COLOURS.values())
    paths = []
    for i in range(count):
        path = root / f"clip_{i:04d}.mp4"
        if not path.exists() or path.stat().st_size == 0:
            tmp = path.with_suffix(".tmp.mp4")
            frames = scene_frames(int(seconds * fps), height=height, width=width,
                                  colour=colours[i % len(colours)], seed=i)
            write_video(tmp, frames, fps=fps, gop=gop)
            tmp.rename(path)
        paths.append(path)
    return paths


def write_edited_corpus(root: Path, *, count: int, seconds: float = 8.0, fps: int = 25,
                        width: int = 320, height: int = 240) -> dict[str, list[int]]:
    """`count` H.264 videos cut from 2-4 shots each (cached); returns
    {path: the first frame of every shot after the first}."""
    import numpy as np

    from pipeline.synthetic.edits import cut_frames

    root.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list[int]] = {}
    total = int(seconds * fps)
    for i in range(count):
        rng = np.random.default_rng(i)
        n_shots = int(rng.integers(2, 5))
        cuts = sorted(rng.choice(np.arange(fps, total - fps, fps // 2), n_shots - 1,
                                 replace=False).tolist())
        lengths = np.diff([0, *cuts, total]).tolist()
        path = root / f"edit_{i:04d}.mp4"
        frames, truth[str(path)] = cut_frames(lengths, height=height, width=width, seed=i)
        if not path.exists() or path.stat().st_size == 0:
            tmp = path.with_suffix(".tmp.mp4")
            write_video(tmp, frames, fps=fps)
            tmp.rename(path)
    return truth


def write_motion_corpus(root: Path, *, per_class: int, frames: int = 40, size: int = 64,
                        seed: int = 0) -> dict[str, str]:
    """`per_class` videos of each motion direction, in a folder per class
    (root/<direction>/<direction>_NNN.mp4); returns {path: direction}."""
    import numpy as np

    from pipeline.synthetic.motion import DIRECTIONS, draw_scene, motion_frames

    truth: dict[str, str] = {}
    for c, direction in enumerate(sorted(DIRECTIONS)):
        (root / direction).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, c, i])
            scene = draw_scene(direction, rng, height=size, width=size)
            path = root / direction / f"{direction}_{i:03d}.mp4"
            write_video(path, motion_frames(scene, frames), fps=25)
            truth[str(path.resolve())] = direction
    return truth
