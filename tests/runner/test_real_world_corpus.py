"""`vidlake label` on a real local Ray over files as other software writes them:
a phone's rotated mp4, broadcast MPEG-TS with B-frames, open-GOP HEVC (x265's
default), AVI with B-frames, MPEG-PS, plain h264 mp4. Every clip's frames must
be the right ones and every time exact, whichever decoder the file needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jobs import label
from pipeline.synthetic.video_writer import write_video
from tests.lakes import by_name, rows
from tests.media import set_mp4_rotation

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

N_FRAMES, FPS, STEP = 30, 25, 8  # red = STEP x frame index: a frame says which it is
# file name -> (writer codec, decoder expected, rotation)
FILES = {
    "plain.mp4": ("h264", "decord", 0),
    "phone.mp4": ("h264", "decord", 90),
    "broadcast.ts": ("h264_bframes", "pyav", 0),
    "open_gop.mkv": ("hevc", "pyav", 0),
    "capture.avi": ("h264_bframes", "pyav", 0),
    "dvd.mpg": ("mpeg2", "pyav", 0),
}
CLIPS = "clip_labels:model=tests.known_models:first_frame_index,clip_len=4,size=32,labels={}"


def _frames(width: int = 96, height: int = 64):
    for index in range(N_FRAMES):
        frame = np.full((height, width, 3), 128, np.uint8)
        frame[..., 0] = STEP * index
        yield frame


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name, (codec, _, rotation) in FILES.items():
        path = folder / name if not rotation else tmp_path / f"unrotated-{name}"
        write_video(path, _frames(), fps=FPS, codec=codec, gop=12)
        if rotation:
            set_mp4_rotation(path, folder / name, rotation)
    return folder


def test_every_file_gives_its_own_frames_at_their_times(source: Path, tmp_path: Path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(i) for i in range(256)))
    lake = tmp_path / "lake"
    assert label.main([str(source), "--output", str(lake), "--analysis",
                       CLIPS.format(labels)]) == 0

    videos = by_name(rows(str(lake), "select * from videos"))
    assert sorted(videos) == sorted(FILES)
    for name, (_, decoder, rotation) in FILES.items():
        video = videos[name]
        assert video["status"] == "ok", (name, video["error"])
        assert (video["decoder"], video["rotation"]) == (decoder, rotation), name
        assert (video["width"], video["height"]) == ((64, 96) if rotation else (96, 64)), name
        assert video["n_frames"] == N_FRAMES, name
    clips = rows(str(lake), "select * from clip_labels order by uri, clip_index")
    assert {str(c["uri"]).rsplit("/", 1)[-1] for c in clips} == set(FILES)
    for clip in clips:
        name = str(clip["uri"]).rsplit("/", 1)[-1]
        # the clip's first frame, by its red level (lossy coding: within 3 of STEP x index)
        assert abs(int(clip["label"]) - STEP * clip["start_frame"]) <= 3, (name, clip)
        assert clip["start_s"] == pytest.approx(clip["start_frame"] / FPS, abs=1e-3), name
