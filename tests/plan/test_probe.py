"""probe_video: exact metadata of generated videos; bad input becomes `error`, never raises."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.corpus.listing import list_corpus
from pipeline.corpus.video_ref import VideoRef
from pipeline.plan.probe import probe_video, probe_videos
from pipeline.plan.video_info import VideoInfo
from tests.media import BAD, BAD_SOURCE_FRAMES, GOOD


@pytest.fixture(scope="module")
def probed(media: Path) -> dict[str, VideoInfo]:
    """VideoInfo of every media file, by file name."""
    return {Path(i.ref.uri).name: i for i in probe_videos(list_corpus(str(media)))}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_video_metadata_is_exact(probed: dict[str, VideoInfo], name: str):
    spec, info = GOOD[name], probed[name]
    assert info.ok, info.error
    assert (info.codec, info.width, info.height, info.n_frames) == (
        spec.stream_codec, spec.width, spec.height, spec.n_frames)
    assert info.fps == pytest.approx(spec.fps, abs=1e-9)
    assert info.duration_s == pytest.approx(spec.duration_s, abs=2e-3)  # mkv: ms timestamps
    assert info.stream_index == 0 and info.rotation == 0


# Files whose header is unusable: the reason must say so in words.
UNREADABLE = {
    "empty.mp4": "empty file (0 bytes)",
    "text.mkv": "not a readable video: Invalid data found when processing input",
    "truncated.mp4": "not a readable video: Invalid data found when processing input",
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_unreadable_file_gets_a_readable_reason(probed: dict[str, VideoInfo], name: str):
    info = probed[name]
    assert not info.ok
    assert info.error == UNREADABLE[name]
    assert (info.n_frames, info.width, info.height, info.fps) == (0, 0, 0, 0.0)


@pytest.mark.parametrize("name", ["truncated_faststart.mp4", "corrupt.mp4"])
def test_damage_past_the_header_is_found_only_by_decoding(probed: dict[str, VideoInfo],
                                                           name: str):
    info = probed[name]
    assert info.ok, info.error
    assert info.n_frames == BAD_SOURCE_FRAMES and info.codec == "h264"


def test_every_bad_kind_is_covered(probed: dict[str, VideoInfo]):
    assert set(UNREADABLE) | {"truncated_faststart.mp4", "corrupt.mp4"} == set(BAD)


def test_audio_only_container_has_no_video_stream(tmp_path: Path):
    path = tmp_path / "audio.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        for _ in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                               layout="mono")
            frame.sample_rate = 8000
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    (ref,) = list_corpus(str(path))
    assert probe_video(ref).error == "no video stream in the container"


def test_missing_objects_never_raise(tmp_path: Path):
    from_manifest = VideoRef(str(tmp_path / "gone.mp4"), 0, "missing")
    assert probe_video(from_manifest).error == "object not found"
    deleted_after_listing = VideoRef(str(tmp_path / "gone.mp4"), 1234, "mtime:1")
    info = probe_video(deleted_after_listing)
    assert not info.ok and "No such file or directory" in (info.error or "")
