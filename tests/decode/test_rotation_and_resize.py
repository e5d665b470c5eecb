"""Rotated videos decode upright with decord and with PyAV alike, probing reports
the displayed size, and sizes decord's own resize gets wrong still decode."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.config import FrameSize
from pipeline.corpus.listing import list_corpus
from pipeline.decode.decord_decoder import decode_with_decord
from pipeline.decode.pyav_decoder import decode_with_pyav
from pipeline.plan.probe import probe_video
from pipeline.synthetic.video_writer import write_video
from tests.media import set_mp4_rotation

WIDTH, HEIGHT, N_FRAMES = 96, 64, 12
INDICES = np.asarray([0, 5, 11])


def _frame(index: int) -> np.ndarray:
    """A landscape frame whose every quarter turn looks different: red grows
    along x, green along y, blue is the frame index."""
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[..., 0] = np.arange(WIDTH, dtype=np.uint8)[None, :] * 2
    frame[..., 1] = np.arange(HEIGHT, dtype=np.uint8)[:, None] * 3
    frame[..., 2] = index * 10
    return frame


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lossless landscape mp4 with no rotation."""
    path = tmp_path_factory.mktemp("rotation") / "landscape.mp4"
    write_video(path, (_frame(i) for i in range(N_FRAMES)), codec="lossless")
    return path


def _rotated(stored: Path, degrees_cw: int, tmp_path: Path) -> Path:
    path = tmp_path / f"rotated{degrees_cw}.mp4"
    set_mp4_rotation(stored, path, degrees_cw)
    return path


def _upright(degrees_cw: int) -> np.ndarray:
    """The frames at INDICES as a player shows them: turned clockwise."""
    return np.stack([np.rot90(_frame(int(i)), -degrees_cw // 90) for i in INDICES])


@pytest.mark.parametrize("degrees_cw", [90, 180, 270])
def test_probe_reports_the_rotation_and_the_displayed_size(stored: Path, degrees_cw: int,
                                                           tmp_path: Path):
    (ref,) = list_corpus(str(_rotated(stored, degrees_cw, tmp_path)))
    info = probe_video(ref)
    assert info.ok, info.error
    assert info.rotation == degrees_cw
    turned = degrees_cw in (90, 270)
    assert (info.width, info.height) == ((HEIGHT, WIDTH) if turned else (WIDTH, HEIGHT))


@pytest.mark.parametrize("degrees_cw", [0, 90, 180, 270])
def test_both_decoders_give_the_upright_frames(stored: Path, degrees_cw: int, tmp_path: Path):
    path = str(_rotated(stored, degrees_cw, tmp_path)) if degrees_cw else str(stored)
    want = _upright(degrees_cw)
    size = FrameSize(want.shape[2], want.shape[1])  # the displayed size: nothing resized
    by_decord, kept, _, _ = decode_with_decord(path, INDICES, size, threads=1,
                                               fault_tolerance=0.0)
    by_pyav, kept_pyav, _, _ = decode_with_pyav(path, INDICES, size, threads=1)
    assert kept.tolist() == kept_pyav.tolist() == INDICES.tolist()
    # Lossless RGB coding: exact but for the odd rounding in the colour conversion.
    assert np.abs(by_decord.astype(int) - want).max() <= 2
    assert np.abs(by_pyav.astype(int) - want).max() <= 2


@pytest.mark.parametrize("degrees_cw", [0, 90])
@pytest.mark.parametrize("size", [FrameSize(48, 32), FrameSize(24, 64), FrameSize(40, 60)])
def test_decoders_agree_at_sizes_decords_resize_gets_wrong(stored: Path, degrees_cw: int,
                                                           size: FrameSize, tmp_path: Path):
    """decord's resize on decode fails for widths 48 and 24 of this source
    ("DECORDArrayCopyFromTo: The size must exactly match"); 40 works."""
    path = str(_rotated(stored, degrees_cw, tmp_path)) if degrees_cw else str(stored)
    by_decord, kept, _, _ = decode_with_decord(path, INDICES, size, threads=1,
                                               fault_tolerance=0.0)
    by_pyav, *_ = decode_with_pyav(path, INDICES, size, threads=1)
    assert kept.tolist() == INDICES.tolist()
    assert by_decord.shape == by_pyav.shape == (len(INDICES), size.height, size.width, 3)
    # Two bilinear scalers: close, not equal. The wrong orientation is ~50 away.
    assert np.abs(by_decord.astype(int) - by_pyav).mean() < 4


def test_pyav_stored_frames_are_not_upright(stored: Path, tmp_path: Path):
    """What the PyAV path corrects: PyAV hands out the stored, landscape pixels."""
    with av.open(str(_rotated(stored, 90, tmp_path))) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert first.shape == (HEIGHT, WIDTH, 3)
