"""Encode numpy frames into real video files with PyAV."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
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
                muxer_options: dict[str, str] | None = None) -> int:
    """Write RGB frames (uint8 [H, W, 3], even sides) to `path`; returns the count.

    The container follows the file extension (.mp4, .mkv, .mov...);
    `muxer_options` go to FFmpeg's muxer (e.g. movflags=frag_keyframe+empty_moov
    for a fragmented mp4).
    """
    encoder, pix_fmt, options = _CODECS[codec]
    with _scheduling_kept():
        return _encode(path, frames, fps, encoder, pix_fmt, options, gop, muxer_options or {})


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


def _encode(path: str | Path, frames: Iterable[np.ndarray], fps: float, encoder: str,
            pix_fmt: str, options: dict[str, str], gop: int, muxer: dict[str, str]) -> int:
    import av

    count = 0
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=muxer) as container:
        stream: Any = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(encoder, rate=rate, options=dict(options))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = pix_fmt
                stream.codec_context.gop_size = gop
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(video_frame))
            count += 1
        if stream is not None:
            container.mux(stream.encode(None))
    return count


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
