"""Fallback decoding with PyAV for what decord cannot open (AV1 with its old
bundled FFmpeg, some containers). Decodes forward from the start and counts
frames, so indices mean the same as decord's: the n-th frame of the stream.
Frames are turned upright by their display matrix, as decord's are."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.config import FrameSize
from pipeline.decode.frame_geometry import rotation_cw, upright_rgb


def decode_with_pyav(path: str, indices: np.ndarray, size: FrameSize, *, threads: int,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Decode `indices` (sorted, unique) with PyAV; same return shape as decord's.

    The reported frame count is the number of frames decoded, which is exact
    only when the unit reached the end of the stream; otherwise it is 0.
    """
    import av

    wanted = set(indices.tolist())
    last = int(indices[-1]) if indices.size else -1
    frames: list[np.ndarray] = []
    kept: list[int] = []
    stamps: list[float] = []
    index = -1
    with av.open(path, "r") as container:
        stream: Any = container.streams.best("video")
        stream.thread_type = "AUTO"
        stream.thread_count = max(1, threads)
        frame: Any
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                frames.append(upright_rgb(frame, size, rotation_cw(frame)))
                kept.append(index)
                stamps.append(float(frame.time) if frame.time is not None else np.nan)
            if index >= last:
                break
    reached_end = index < last
    stacked = (np.stack(frames) if frames
               else np.empty((0, size.height, size.width, 3), np.uint8))
    return (stacked, np.asarray(kept, np.int64), np.asarray(stamps, np.float64),
            index + 1 if reached_end else 0)
