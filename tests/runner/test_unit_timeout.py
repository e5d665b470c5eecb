"""A decoder (or a model) that hangs in native code holding the GIL cannot stop
itself: the Ray driver kills its process past the unit (inference) timeout,
records that video as an error, and finishes the run with every other video ok."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import (
    DecodeShape,
    ExecutionSpec,
    FrameSize,
    LabelConfig,
    ModelSpec,
    SampleSpec,
)
from pipeline.runner.label_run import run_label
from pipeline.runner.ray_engine import RayEngine
from pipeline.synthetic.video_writer import write_video
from tests.lakes import by_name, rows, table_counts

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

UNIT_TIMEOUT_S = 3.0


@pytest.mark.parametrize("decode", ["workers", "in-actor"])
def test_hung_decoder_is_killed_and_recorded(corpus, media: Path, tmp_path: Path,
                                             decode: DecodeShape):
    source = corpus("h264.mp4", "lossless.mkv")
    (source / "HANG.mp4").write_bytes((media / "h264.mp4").read_bytes())
    lake = tmp_path / "lake"
    config = LabelConfig(
        source=str(source), output=str(lake), model=ModelSpec("mobilenet_v3_small"),
        sample=SampleSpec.parse("uniform:3"), size=FrameSize(64, 64),
        execution=ExecutionSpec(decode=decode, unit_timeout_s=UNIT_TIMEOUT_S,
                                decoder_path="tests.fault_injection:hang_on_marker"))
    summary = run_label(config, RayEngine)
    assert summary.status == "completed"
    videos = by_name(rows(str(lake), "select * from videos"))
    assert sorted(videos) == ["HANG.mp4", "h264.mp4", "lossless.mkv"]
    hung = videos["HANG.mp4"]
    assert hung["status"] == "error" and "timed out" in hung["error"], hung["error"]
    for name in ("h264.mp4", "lossless.mkv"):
        assert videos[name]["status"] == "ok", videos[name]["error"]
        assert videos[name]["n_sampled"] == 3
    assert table_counts(str(lake))["frame_labels"] == 6
    (run,) = rows(str(lake), "select counts from runs")
    assert run["counts"]["videos_failed"] == 1 and run["counts"]["videos_ok"] == 2


def test_hung_model_call_is_stopped_and_recorded(corpus, tmp_path: Path):
    """Workers shape: a model call that hangs on one video's frames is stopped
    past --inference-timeout, its actor replaced, its units run again one by
    one: the hanging one is recorded as an error, the others finish."""
    source = corpus("h264.mp4", "lossless.mkv")
    write_video(source / "dark.mp4", iter(np.zeros((30, 64, 64, 3), np.uint8)), fps=25)
    lake = tmp_path / "lake"
    config = LabelConfig(
        source=str(source), output=str(lake), model=ModelSpec("tests.known_models:hang_on_dark"),
        sample=SampleSpec.parse("uniform:3"), size=FrameSize(64, 64),
        execution=ExecutionSpec(inference_timeout_s=UNIT_TIMEOUT_S, batch_frames=3))
    summary = run_label(config, RayEngine)
    assert summary.status == "completed"
    videos = by_name(rows(str(lake), "select * from videos"))
    assert videos["dark.mp4"]["status"] == "error"
    assert "inference timed out" in videos["dark.mp4"]["error"], videos["dark.mp4"]["error"]
    for name in ("h264.mp4", "lossless.mkv"):
        assert videos[name]["status"] == "ok", videos[name]["error"]
    assert table_counts(str(lake))["frame_labels"] == 6
