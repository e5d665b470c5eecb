"""Test videos, encoded by the tests with PyAV: good ones in several codecs and
containers, and every kind of bad input (empty, not a video, truncated, corrupt).

Good videos carry `index_pattern_frames`, so a decoded frame of a lossless
video says exactly which frame it is (channel 0 = index % 256, channel 1 =
index // 256).
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from pipeline.synthetic.video_writer import index_pattern_frames, write_video


@dataclass(frozen=True)
class VideoSpec:
    """How a good test video is made, and what probing it must report."""

    n_frames: int
    fps: float
    codec: str  # writer codec name
    stream_codec: str  # codec name the probe reports
    width: int = 64
    height: int = 64

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


GOOD: dict[str, VideoSpec] = {
    "lossless.mp4": VideoSpec(300, 25.0, "lossless", "h264"),
    "lossless.mkv": VideoSpec(40, 30.0, "lossless", "h264"),
    "h264.mp4": VideoSpec(50, 25.0, "h264", "h264"),
    "h264.mkv": VideoSpec(50, 24.0, "h264", "h264"),
    "av1.mp4": VideoSpec(30, 25.0, "av1", "av1"),  # decord's FFmpeg cannot open AV1
    "wide.mp4": VideoSpec(20, 25.0, "h264", "h264", width=64, height=48),
}

# Bad inputs, each with the reason it is bad.
BAD: dict[str, str] = {
    "empty.mp4": "zero bytes",
    "text.mkv": "a text file with a video extension",
    "truncated.mp4": "mp4 cut in half; its moov (index) was at the end and is gone",
    "truncated_faststart.mp4": "faststart mp4 (moov first) cut in half: probes, cannot decode",
    "corrupt.mp4": "valid header, random bytes over the middle of mdat",
}
BAD_SOURCE_FRAMES = 100  # frames of the video the truncated/corrupt files are cut from


def expected_frame(index: int, height: int = 64, width: int = 64) -> np.ndarray:
    """The exact RGB frame `index_pattern_frames` writes at `index`."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = index % 256
    frame[..., 1] = index // 256
    frame[..., 2] = 128
    return frame


def pattern_index(frame: np.ndarray) -> int:
    """The frame index a decoded index-pattern frame encodes (read at its centre)."""
    y, x = frame.shape[0] // 2, frame.shape[1] // 2
    return int(frame[y, x, 0]) + 256 * int(frame[y, x, 1])


def write_good(path: Path, spec: VideoSpec) -> None:
    write_video(path, index_pattern_frames(spec.n_frames, spec.height, spec.width),
                fps=spec.fps, codec=spec.codec)


def remux_faststart(src: Path, dst: Path) -> None:
    """Copy an mp4's packets into a new mp4 whose moov atom comes first."""
    with av.open(str(src)) as inp, av.open(str(dst), "w",
                                           options={"movflags": "faststart"}) as out:
        stream = inp.streams.video[0]
        target = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            packet.stream = target
            out.mux(packet)


# tkhd display matrices (a, b, u, c, d, v, x, y, w; 16.16 fixed point, w 2.30) that
# turn the picture clockwise by the key, as phones write them (90: shot upright).
_ONE, _W = 0x10000, 1 << 30
_MATRICES = {90: (0, _ONE, 0, -_ONE, 0, 0, 0, 0, _W), 180: (-_ONE, 0, 0, 0, -_ONE, 0, 0, 0, _W),
             270: (0, -_ONE, 0, _ONE, 0, 0, 0, 0, _W)}


def set_mp4_rotation(src: Path, dst: Path, degrees_cw: int) -> None:
    """Copy a one-track mp4, setting its track's display matrix to a clockwise
    rotation (FFmpeg's muxer cannot write one from PyAV)."""
    raw = bytearray(src.read_bytes())
    box = raw.find(b"tkhd")
    if box < 0:
        raise ValueError(f"{src} has no tkhd box")
    version = raw[box + 4]
    times = 8 + 8 + 4 + 4 + 8 if version == 1 else 4 + 4 + 4 + 4 + 4  # ..., track id, duration
    matrix = box + 4 + 4 + times + 8 + 2 + 2 + 2 + 2  # reserved, layer, group, volume, reserved
    raw[matrix : matrix + 36] = struct.pack(">9i", *_MATRICES[degrees_cw])
    dst.write_bytes(bytes(raw))


def _mdat_payload(raw: bytes) -> tuple[int, int]:
    start = raw.find(b"mdat")
    if start < 0:
        raise ValueError("no mdat atom")
    size = int.from_bytes(raw[start - 4 : start], "big")
    return start + 4, start - 4 + size


def write_bad(folder: Path, scratch: Path) -> None:
    """Write every file of BAD into `folder` (`scratch` holds intermediates)."""
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mkv").write_text("this is not a video\n" * 20)
    source = scratch / "source.mp4"
    write_video(source, index_pattern_frames(BAD_SOURCE_FRAMES), fps=25, codec="lossless")
    raw = source.read_bytes()
    if raw.find(b"moov") < raw.find(b"mdat"):
        raise AssertionError("expected the writer to put moov after mdat")
    (folder / "truncated.mp4").write_bytes(raw[: len(raw) // 2])
    faststart = scratch / "faststart.mp4"
    remux_faststart(source, faststart)
    fast = faststart.read_bytes()
    if not fast.find(b"moov") < fast.find(b"mdat"):
        raise AssertionError("faststart remux did not move moov to the front")
    (folder / "truncated_faststart.mp4").write_bytes(fast[: len(fast) // 2])
    begin, end = _mdat_payload(raw)
    third = (end - begin) // 3
    garbage = np.random.default_rng(0).integers(0, 256, third, dtype=np.uint8).tobytes()
    (folder / "corrupt.mp4").write_bytes(raw[: begin + third] + garbage + raw[begin + 2 * third :])


def build_media(folder: Path) -> None:
    """Every GOOD and BAD file in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in GOOD.items():
        write_good(folder / name, spec)
    scratch = folder / "_scratch"
    scratch.mkdir(exist_ok=True)
    write_bad(folder, scratch)
    shutil.rmtree(scratch)


def copy_corpus(media: Path, dest: Path, names: list[str] | tuple[str, ...]) -> Path:
    """A fresh corpus folder holding copies of `names` from the media folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(media / name, dest / name)
    return dest
