"""What probing a video's container tells us."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.corpus.video_ref import VideoRef


@dataclass(frozen=True)
class VideoInfo:
    """Container metadata of a video's chosen (best) video stream.

    `error` is set (and the numbers are zero) when the video cannot be used;
    `n_frames` counts frames of the chosen stream; `fps` is its average rate.
    """

    ref: VideoRef
    codec: str = ""
    container: str = ""  # FFmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "mpegts"
    width: int = 0  # pixels, as displayed: after the rotation below, as frames are analysed
    height: int = 0
    fps: float = 0.0  # frames per second, average
    n_frames: int = 0
    duration_s: float = 0.0
    stream_index: int = -1
    rotation: int = 0  # degrees clockwise a player turns the coded picture (0/90/180/270)
    # int64 [K] sorted indices of keyframes, when the run samples keyframes (else None)
    keyframes: np.ndarray | None = field(default=None, compare=False)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
