"""decode_unit: exact frames at exact indices (decord, and PyAV as fallback);
bad input becomes DecodedUnit.error, never an exception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import FrameSize, SampleSpec
from pipeline.corpus.listing import list_corpus
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.pyav_decoder import decode_with_pyav
from pipeline.decode.unit_decoder import DecodeSettings, decode_unit
from pipeline.plan.planner import plan_sampled
from pipeline.plan.probe import probe_video
from pipeline.plan.work_unit import WorkUnit, unit_id_for
from pipeline.synthetic.video_writer import write_video
from tests.media import BAD, BAD_SOURCE_FRAMES, GOOD, expected_frame

SETTINGS = DecodeSettings(size=FrameSize(64, 64))
# Indices around the lossless videos' GOP boundaries (gop=25) and the 8-bit wrap (256).
SPARSE = (0, 1, 24, 25, 26, 99, 100, 255, 256, 257, 298, 299)


def unit_of(path: Path, indices: tuple[int, ...], fps: float = 25.0) -> WorkUnit:
    """A hand-made unit over `indices` of the file at `path`."""
    if path.exists():
        (ref,) = list_corpus(str(path))
    else:
        ref = VideoRef(str(path), 1000, "mtime:1")
    return WorkUnit(unit_id=unit_id_for(ref, "test", indices[0], indices[-1] + 1), video=ref,
                    unit_index=0, frame_indices=indices, fps=fps)


def assert_exact(decoded: DecodedUnit, indices: tuple[int, ...], fps: float) -> None:
    """Every frame is the one its index names, pixel for pixel, at its time."""
    assert decoded.ok, decoded.error
    assert decoded.frame_indices.tolist() == list(indices)
    expected = np.stack([expected_frame(i) for i in indices])
    mismatched = [i for i, got, want in zip(indices, decoded.frames, expected, strict=True)
                  if not np.array_equal(got, want)]
    assert mismatched == []
    np.testing.assert_allclose(decoded.timestamps_s, np.asarray(indices) / fps, atol=1e-3)


def test_decord_decodes_every_unit_of_a_long_video_exactly(media: Path):
    (ref,) = list_corpus(str(media / "lossless.mp4"))
    units = plan_sampled(probe_video(ref), SampleSpec.parse("every:1"), 64, "key")
    assert len(units) == 5
    for unit in units:
        decoded = decode_unit(SETTINGS, unit)
        assert decoded.decoder == "decord"
        assert decoded.decoder_n_frames == 300
        assert_exact(decoded, unit.frame_indices, 25.0)


@pytest.mark.parametrize("indices", [SPARSE, (150,), (24, 25), (299,)])
def test_decord_seeks_to_exact_frames(media: Path, indices: tuple[int, ...]):
    decoded = decode_unit(SETTINGS, unit_of(media / "lossless.mp4", indices))
    assert decoded.decoder == "decord"
    assert_exact(decoded, indices, 25.0)


def test_decord_exact_in_matroska(media: Path):
    indices = (0, 13, 29, 30, 39)
    decoded = decode_unit(SETTINGS, unit_of(media / "lossless.mkv", indices, fps=30.0))
    assert decoded.decoder == "decord"
    assert_exact(decoded, indices, 30.0)


def test_pyav_decodes_the_same_exact_frames(media: Path):
    frames, kept, stamps, count = decode_with_pyav(
        str(media / "lossless.mp4"), np.asarray(SPARSE), FrameSize(64, 64), threads=1)
    decoded = DecodedUnit(unit_of(media / "lossless.mp4", SPARSE), frames, kept, stamps, "pyav",
                          count)
    assert_exact(decoded, SPARSE, 25.0)


def test_resize_on_decode_gives_the_configured_size(media: Path):
    settings = DecodeSettings(size=FrameSize(32, 48))
    decoded = decode_unit(settings, unit_of(media / "lossless.mp4", (3, 260)))
    assert decoded.ok, decoded.error
    assert decoded.frames.shape == (2, 48, 32, 3) and decoded.frames.dtype == np.uint8
    np.testing.assert_array_equal(decoded.frames[1], expected_frame(260, 48, 32))


def test_av1_falls_back_to_pyav(media: Path):
    indices = (0, 7, 12, 29)
    decoded = decode_unit(SETTINGS, unit_of(media / "av1.mp4", indices))
    assert decoded.ok, decoded.error
    assert decoded.decoder == "pyav"
    assert decoded.frame_indices.tolist() == list(indices)
    assert decoded.frames.shape == (4, 64, 64, 3)
    np.testing.assert_allclose(decoded.timestamps_s, np.asarray(indices) / 25.0, atol=1e-3)


def _distinct_frames(n: int):
    """Frames whose colours differ by far more than h264's loss between neighbours."""
    for i in range(n):
        frame = np.empty((64, 64, 3), np.uint8)
        frame[..., 0], frame[..., 1], frame[..., 2] = (i * 47) % 256, (i * 91) % 256, (i * 13) % 256
        yield frame


def test_lossy_h264_seeks_land_in_the_right_gop(tmp_path: Path):
    """decord vs the encoded frames and vs PyAV, one seek per frame near GOP edges."""
    path = tmp_path / "gop10.mp4"
    write_video(path, _distinct_frames(60), fps=25, codec="h264", gop=10)
    wanted = np.stack(list(_distinct_frames(60))).astype(int)
    for index in (9, 10, 11, 19, 20, 29, 30, 31, 49, 50, 59):
        decoded = decode_unit(SETTINGS, unit_of(path, (index,)))
        assert decoded.ok and decoded.decoder == "decord", decoded.error
        errors = np.abs(wanted - decoded.frames[0].astype(int)).max(axis=(1, 2, 3))
        assert int(errors.argmin()) == index and errors[index] <= 8
        reference, *_ = decode_with_pyav(str(path), np.asarray([index]), FrameSize(64, 64),
                                         threads=1)
        assert np.abs(reference[0].astype(int) - decoded.frames[0]).max() <= 2


# decord raises a plain RuntimeError ("Error reading PATH...") when FFmpeg cannot open
# the file at all: decode_unit must still fall back to PyAV and record an error.
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_becomes_an_error_record(media: Path, name: str):
    indices = tuple(range(0, BAD_SOURCE_FRAMES, 9))
    decoded = decode_unit(SETTINGS, unit_of(media / name, indices))
    assert not decoded.ok
    assert decoded.error and len(decoded.error) > 10
    assert decoded.frames.size == 0 and decoded.frame_indices.size == 0


def test_frames_past_the_decoders_count_fail_the_unit(media: Path):
    decoded = decode_unit(SETTINGS, unit_of(media / "h264.mp4", (0, 10, 49, 60, 70)))
    assert decoded.error == ("truncated or corrupt: 2 of 5 sampled frames (from frame 60) "
                             "could not be decoded")


def test_deleted_file_is_an_error_record(tmp_path: Path):
    decoded = decode_unit(SETTINGS, unit_of(tmp_path / "deleted.mp4", (0, 1)))
    assert not decoded.ok and decoded.error


def test_good_media_all_decode(media: Path):
    for name, spec in GOOD.items():
        indices = (0, spec.n_frames // 2, spec.n_frames - 1)
        size = DecodeSettings(size=FrameSize(spec.width, spec.height))
        decoded = decode_unit(size, unit_of(media / name, indices, spec.fps))
        assert decoded.ok, (name, decoded.error)
        assert decoded.frames.shape == (3, spec.height, spec.width, 3)
