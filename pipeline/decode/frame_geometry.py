"""Frame orientation and resizing done by us, not by decord.

Display rotation: phones store a portrait video as landscape pixels plus a
display matrix. decord applies the matrix (its frames are upright, as a player
shows them); PyAV hands out the pixels as coded. The PyAV path turns its frames
the same way, so both decoders give the same upright frames, and sizes, boxes
and `videos.width/height` all refer to that orientation.

Resizing: decord's resize-on-decode fails for some output widths (16, 24, 48,
72... on a 96x64 source: "DECORDArrayCopyFromTo: The size must exactly match"),
so when it does, frames are decoded at their own size and resized here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.config import FrameSize


def rotation_cw(frame: Any) -> int:
    """Clockwise degrees (0, 90, 180 or 270) a player turns this PyAV frame to show
    it: the mp4 `rotate` tag's convention, 90 for a phone video shot upright.
    FFmpeg 7 keeps the display matrix on each frame, counter-clockwise."""
    counter_clockwise = float(getattr(frame, "rotation", 0) or 0)
    return (-round(counter_clockwise / 90) * 90) % 360


def quarter_turns(degrees_cw: int) -> int:
    """Clockwise display rotation in degrees -> counter-clockwise quarter turns
    for `np.rot90` that make the coded picture upright (0..3)."""
    return (-round(degrees_cw / 90)) % 4


def upright_rgb(frame: Any, size: FrameSize, degrees_cw: int) -> np.ndarray:
    """A PyAV VideoFrame -> upright RGB uint8 [size.height, size.width, 3].

    Resized in the coded orientation first (swscale, the same scaler decord
    uses), then turned: turning the small frame is cheaper than the large one.
    """
    turns = quarter_turns(degrees_cw)
    width, height = (size.height, size.width) if turns % 2 else (size.width, size.height)
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def resize_rgb(frames: np.ndarray, size: FrameSize) -> np.ndarray:
    """uint8 [N, H, W, 3] -> uint8 [N, size.height, size.width, 3], bilinear
    (swscale through PyAV); frames already at `size` come back as they are."""
    import av

    if frames.shape[1:3] == (size.height, size.width):
        return frames
    out = np.empty((len(frames), size.height, size.width, 3), np.uint8)
    for i, frame in enumerate(frames):
        source = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        out[i] = source.reformat(width=size.width, height=size.height).to_ndarray()
    return out
