"""Decoding keyframes alone: each one packet, sent to a fresh decoder.

An exact sparse read decodes a GOP to reach one frame (up to 250 pictures in
a long-GOP file); a keyframe needs no other picture. Units that read only
keyframes (`--sample keyframes`, `uniform:8~`; the planner marks them) seek to
each keyframe's packet and decode that packet alone. A keyframe is found by its
presentation time, the frame index's rank among the stream's packet times, so
the index is the one every other path gives. Where that cannot be done (packets
without times, a seek that lands elsewhere), `KeyframeMissed` sends the unit to
the exact path, which is slower and just as right.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.config import FrameSize
from pipeline.decode.frame_geometry import rotation_cw, upright_rgb
from pipeline.decode.pyav_decoder import (
    FrameTooLarge,
    rate_if_no_frame_times,
    sorted_pts,
)

# How far before a keyframe to seek, in seconds, when a seek to it lands past
# it: containers without an index (MPEG-TS, MPEG-PS) seek by estimate. The
# packets in between are read, not decoded.
SEEK_BACK_S = (0.0, 1.0, 4.0, 16.0, 64.0, None)  # None: from the start


class KeyframeMissed(RuntimeError):
    """A wanted keyframe could not be reached by its own packet: decode exactly."""


def decode_keyframes(path: str, indices: np.ndarray, size: FrameSize, *,
                     max_pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Decode the keyframes `indices` (sorted, unique) of the video at `path`.

    Returns (frames uint8 [F, H, W, 3] upright at `size`, indices int64 [F],
    timestamps_s float64 [F], 0: no frame count). Raises KeyframeMissed when a
    frame is not a keyframe reachable alone, FrameTooLarge over `max_pixels`."""
    import av

    stamps_by_index = sorted_pts(path)
    if stamps_by_index is None or (indices.size and indices[-1] >= len(stamps_by_index)):
        raise KeyframeMissed("the stream's packets do not name its frames")
    frames, stamps = [], []
    with av.open(path, "r") as container:
        stream: Any = container.streams.best("video")
        stream.thread_type = "SLICE"  # one picture at a time: frame threads only add delay
        rate = rate_if_no_frame_times(container, stream)
        for index in indices.tolist():
            frame = _decode_one(container, stream, int(stamps_by_index[index]))
            if frame.width * frame.height > max_pixels:
                raise FrameTooLarge(f"frame {index} is {frame.width}x{frame.height} pixels, "
                                    f"over the limit of {max_pixels} (--max-frame-pixels)")
            frames.append(upright_rgb(frame, size, rotation_cw(frame)))
            stamps.append(index / rate if rate else _seconds(stream, frame.pts))
    stacked = (np.stack(frames) if frames
               else np.empty((0, size.height, size.width, 3), np.uint8))
    return stacked, indices.astype(np.int64), np.asarray(stamps, np.float64), 0


def _decode_one(container: Any, stream: Any, pts: int) -> Any:
    """The frame of the keyframe packet whose pts is `pts`, decoded alone."""
    for back_s in SEEK_BACK_S:
        found, passed = _seek_and_decode(container, stream, pts, back_s)
        if found is not None:
            return found
        if not passed:
            break  # the seek reached it, and it does not decode alone
    raise KeyframeMissed(f"no keyframe decodes alone at pts {pts}")


def _seek_and_decode(container: Any, stream: Any, pts: int,
                     back_s: float | None) -> tuple[Any, bool]:
    """(the frame of packet `pts` decoded alone, or None; whether the seek
    landed past that packet). The seek flushes the decoder, and sending no
    packet after the one drains its output."""
    if back_s is None:
        container.seek(0)
    else:
        back = int(back_s / stream.time_base) if back_s else 0
        container.seek(max(pts - back, 0) if back else pts, stream=stream, backward=True)
    for packet in container.demux(stream):
        if packet.dts is not None and packet.dts > pts:
            return None, True  # decode order is past it: its dts <= its pts
        if packet.pts != pts or not packet.size:
            continue
        if not packet.is_keyframe:
            return None, False
        decoded = [*stream.codec_context.decode(packet), *stream.codec_context.decode(None)]
        # the decoder's own verdict, not the container's flag: a packet that
        # lies about being a keyframe decodes to no key picture
        return next((f for f in decoded if f.pts == pts and f.key_frame), None), False
    return None, True


def _seconds(stream: Any, pts: int) -> float:
    """Seconds from the stream's start of a frame's pts."""
    start = stream.start_time if stream.start_time is not None else 0
    return float((pts - start) * stream.time_base)
