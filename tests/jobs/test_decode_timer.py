"""jobs/decode_timer.py, the decode benchmark's worker, run as a script by this
venv's python (the benchmark runs it under side venvs' pythons instead): its
JSON counts the frames each decoder returned in each mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs.decode_benchmark import TIMER
from pipeline.synthetic.video_writer import write_video

N_FRAMES = (12, 5)  # the second is shorter than uniform:8 asks for


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("timer")
    paths = [folder / f"v{n}.mp4" for n in N_FRAMES]
    for path, n in zip(paths, N_FRAMES, strict=True):
        write_video(path, (np.full((48, 64, 3), 8 * i, np.uint8) for i in range(n)))
    return paths


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
@pytest.mark.parametrize(("mode", "frames"), [("sparse", 8 + 5), ("full", 12 + 5)])
def test_the_timer_counts_the_frames_decoded(videos: list[Path], decoder: str, mode: str,
                                             frames: int):
    done = subprocess.run([sys.executable, str(TIMER), decoder, mode, *map(str, videos)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["decoder"] == decoder and result["files"] == 2
    assert result["frames"] == frames and result["seconds"] > 0


def test_the_timer_refuses_an_unknown_mode(videos: list[Path]):
    done = subprocess.run([sys.executable, str(TIMER), "decord", "every", str(videos[0])],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "usage" in done.stderr
