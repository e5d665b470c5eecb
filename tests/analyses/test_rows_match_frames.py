"""Rows describe exactly the frames they came from: clip time ranges and
labels, and detection boxes mapped back to the original frame's pixels,
checked with models whose outputs are known (tests.known_models) on
lossless videos, through `vidlake label --engine sequential`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from jobs import label
from pipeline.synthetic.video_writer import write_video
from tests.lakes import rows

WIDTH, HEIGHT = 320, 240


def _moving_box_frames(n: int) -> Iterator[np.ndarray]:
    """A white 80x120 rectangle at x = 20 + 4i, y = 60 on a dark background."""
    for i in range(n):
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        frame[...] = (30, 60, 90)
        frame[60:180, 20 + 4 * i : 100 + 4 * i] = 255
        yield frame


@pytest.fixture(scope="module")
def box_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("boxes")
    write_video(folder / "box.mp4", _moving_box_frames(30), codec="lossless")
    return folder


@pytest.mark.parametrize(("size", "tolerance"), [("160x120", 0.0), ("160x160", 1.5),
                                                 (None, 0.5)])
def test_boxes_land_in_original_frame_pixels(box_video: Path, tmp_path: Path,
                                             size: str | None, tolerance: float):
    """Frames are resized on decode (the same aspect, another aspect, or the
    default: longer side 640, aspect kept); boxes still map back to where
    the rectangle is in the 320x240 original."""
    lake = tmp_path / "lake"
    options = "model=tests.known_models:white_box_detector,sample=every:3"
    options += f",size={size}" if size else ""
    assert label.main([str(box_video), "--output", str(lake), "--engine", "sequential",
                       "--analysis", f"detections:{options}"]) == 0
    boxes = rows(str(lake), "select * from detections order by frame_index")
    assert [b["frame_index"] for b in boxes] == list(range(0, 30, 3))
    for box in boxes:
        i = box["frame_index"]
        expected = (20 + 4 * i, 60, 100 + 4 * i, 180)
        got = (box["x1"], box["y1"], box["x2"], box["y2"])
        assert np.allclose(got, expected, atol=tolerance), (i, got, expected)
        assert box["timestamp_s"] == pytest.approx(i / 25, abs=1e-6)
        assert (box["label"], box["model"]) == ("class_1", "tests.known_models:white_box_detector")


def test_clip_rows_say_which_frames_the_model_saw(corpus, tmp_path: Path):
    """lossless.mp4: 300 index-pattern frames at 25 fps. The known model labels
    a clip with its first frame's index, so a row whose range is off by even
    one frame, or a clip assembled from the wrong frames, fails."""
    source, lake = corpus("lossless.mp4"), tmp_path / "lake"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(i) for i in range(256)))
    options = ("model=tests.known_models:first_frame_index,clip_len=4,frame_step=3,"
               f"clip_stride=50,size=32,labels={labels}")
    assert label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--max-frames-per-unit", "6", "--analysis", f"clip_labels:{options}"],
                      ) == 0
    clips = rows(str(lake), "select * from clip_labels order by clip_index")
    assert [c["start_frame"] for c in clips] == list(range(0, 291, 50))
    for index, clip in enumerate(clips):
        start = clip["start_frame"]
        assert clip["clip_index"] == index
        assert clip["end_frame"] == start + 3 * 3 + 1  # exclusive: last frame + 1
        assert clip["start_s"] == pytest.approx(start / 25, abs=1e-6)
        assert clip["end_s"] == pytest.approx((start + 9) / 25 + 1 / 25, abs=1e-6)
        assert clip["label"] == str(start % 256)
        assert clip["score"] > 0.98  # softmax of a one-hot 10 over 256 classes
