"""Encode numpy frames into real video files with PyAV."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

# Codec settings per name: (PyAV encoder, pixel format, options). "lossless"
# keeps RGB frames exact so tests can compare decoded pixels.
_CODECS = {
    "h264": ("libx264", "yuv420p", {"preset": "ultrafast", "crf": "28"}),
    "lossless": ("libx264rgb", "rgb24", {"preset": "ultrafast", "qp": "0"}),
    # x265 makes open GOPs by default (leading pictures; see decode/containers.py)
    "hevc": ("libx265", "yuv420p", {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "hevc10": ("libx265", "yuv420p10le", {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "av1": ("libsvtav1", "yuv420p", {"preset": "12"}),
    "vp9": ("libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
    "mpeg4": ("mpeg4", "yuv420p", {}),
    "mpeg2": ("mpeg2video", "yuv420p", {}),
    "h264_10bit": ("libx264", "yuv420p10le", {"preset": "ultrafast", "crf": "28"}),
    "h264_444": ("libx264", "yuv444p", {"preset": "ultrafast", "crf": "28"}),
    "ffv1": ("ffv1", "yuv420p", {}),
    "h264_bframes": ("libx264", "yuv420p", {"preset": "veryfast", "bf": "3", "crf": "23"}),
    "h264_open_gop": ("libx264", "yuv420p", {"preset": "veryfast", "bf": "3",
                                             "x264-params": "open-gop=1"}),
    "hevc_closed_gop": ("libx265", "yuv420p", {"preset": "ultrafast",
                                               "x265-params": "log-level=none:open-gop=0"}),
    "hevc10_closed_gop": ("libx265", "yuv420p10le", {"preset": "ultrafast",
                                                     "x265-params": "log-level=none:open-gop=0"}),
}


def write_video(path: str | Path, frames: Iterable[np.ndarray], *, fps: float = 25.0,
                codec: str = "h264", gop: int = 25,
                muxer_options: dict[str, str] | None = None, rotation: int = 0,
                times_s: Sequence[float] | None = None,
                more_streams: Sequence[Iterable[np.ndarray]] = ()) -> int:
    """Write RGB frames (uint8 [H, W, 3], even sides) to `path`; returns the count.

    The container follows the file extension (.mp4, .mkv, .mov...);
    `muxer_options` go to FFmpeg's muxer (e.g. movflags=frag_keyframe+empty_moov
    for a fragmented mp4). `rotation`: the clockwise degrees (0, 90, 180, 270)
    a player turns the pictures by, stored as the stream's display matrix.
    `times_s`: each frame's presentation time in seconds (a variable frame
    rate), 1 ms resolution; None: frame i at i / fps. `more_streams`: further
    video streams (their frames, any size), same codec, muxed after the first.
    """
    encoder, pix_fmt, options = _CODECS[codec]
    settings = _Settings(encoder, pix_fmt, options, fps, gop, rotation, times_s)
    with _scheduling_kept():
        return _encode(path, [frames, *more_streams], settings, muxer_options or {})


@dataclass(frozen=True)
class _Settings:
    """How every stream of one file is encoded."""

    encoder: str
    pix_fmt: str
    options: dict[str, str]
    fps: float
    gop: int
    rotation: int
    times_s: Sequence[float] | None


@contextlib.contextmanager
def _scheduling_kept() -> Iterator[None]:
    """Restore this thread's scheduling policy after encoding: SVT-AV1 sets its
    caller to SCHED_FIFO priority 99 when it may (as root), and every process
    started afterwards inherits it; Ray's processes then starve each other."""
    if not hasattr(os, "sched_getscheduler"):
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, param)


def _encode(path: str | Path, sources: list[Iterable[np.ndarray]], settings: _Settings,
            muxer: dict[str, str]) -> int:
    """Encode the sources' frames interleaved, one stream per source; returns how
    many frames the first source had."""
    import av

    counts = [0] * len(sources)
    with av.open(str(path), "w", options=muxer) as container:
        streams: list[Any] = [None] * len(sources)
        for frames in itertools.zip_longest(*sources):
            for i, frame in enumerate(frames):
                if frame is None:
                    continue
                if streams[i] is None:
                    streams[i] = _add_stream(container, frame.shape[:2], settings)
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame),
                                                         format="rgb24")
                if settings.times_s is not None:
                    video_frame.pts = round(settings.times_s[counts[i]] * 1000)
                    video_frame.time_base = _MILLISECOND
                container.mux(streams[i].encode(video_frame))
                counts[i] += 1
        for stream in streams:
            if stream is not None:
                container.mux(stream.encode(None))
    return counts[0]


_MILLISECOND = Fraction(1, 1000)


def _add_stream(container: Any, shape: tuple[int, int], settings: _Settings) -> Any:
    stream = container.add_stream(settings.encoder, options=dict(settings.options),
                                  rate=Fraction(settings.fps).limit_denominator(1001))
    stream.height, stream.width = shape
    stream.pix_fmt = settings.pix_fmt
    stream.codec_context.gop_size = settings.gop
    if settings.times_s is not None:
        stream.codec_context.time_base = _MILLISECOND
    if settings.rotation:
        stream.set_display_rotation(-settings.rotation)  # PyAV counts counter-clockwise
    return stream


def index_pattern_frames(n: int, height: int = 64, width: int = 64) -> Iterable[np.ndarray]:
    """Frames whose pixels encode their own index (value = index % 256 in channel 0,
    index // 256 in channel 1): with the lossless codec a decoded frame says which
    frame it is."""
    for i in range(n):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = i % 256
        frame[..., 1] = i // 256
        frame[..., 2] = 128
        yield frame
