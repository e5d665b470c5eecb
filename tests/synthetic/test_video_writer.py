"""The AV1 encoder must not leave the test process (and every Ray process it
starts later) under a real-time scheduling policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.synthetic.video_writer import index_pattern_frames, write_video


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling API")
def test_av1_encode_keeps_the_scheduling_policy(tmp_path: Path):
    before = os.sched_getscheduler(0)
    assert write_video(tmp_path / "a.mp4", index_pattern_frames(8), codec="av1") == 8
    assert os.sched_getscheduler(0) == before
