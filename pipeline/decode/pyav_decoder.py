"""Decoding with PyAV where decord cannot be trusted: what it cannot open (AV1
with its old bundled FFmpeg), containers it seeks wrongly in (containers.py),
and what it calls corrupt. Indices mean the same as decord's, the n-th frame of
the stream, and frames are turned upright by their display matrix, as decord's
are."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from pipeline.config import FrameSize
from pipeline.decode.containers import NO_FRAME_TIMES
from pipeline.decode.frame_geometry import rotation_cw, upright_rgb

# Below this first index a unit decodes from the start: cheaper than scanning
# the file's packets to seek.
SEEK_FROM_FRAME = 250


class FrameTooLarge(ValueError):
    """A decoded picture is larger than the run's pixel limit (its size changed
    mid-stream: the probe checked the first)."""


def decode_with_pyav(path: str, indices: np.ndarray, size: FrameSize, *, threads: int,
                     max_pixels: int = 8192 * 8192,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Decode `indices` (sorted, unique) with PyAV; same return shape as decord's.

    A unit far into the video seeks to the keyframe before its first frame and
    names each decoded frame by its timestamp's rank among all the stream's
    packet timestamps; when those do not name frames one to one, it decodes
    from the start, counting. The reported frame count is the number of frames,
    exact only when the unit reached the end of the stream; otherwise it is 0.
    A picture over `max_pixels` raises FrameTooLarge before it is converted.
    """
    import av

    if indices.size == 0:
        return np.empty((0, size.height, size.width, 3), np.uint8), indices, np.empty(0), 0
    stamps_by_index = sorted_pts(path) if indices[0] >= SEEK_FROM_FRAME else None
    with av.open(path, "r") as container:
        stream: Any = container.streams.best("video")
        stream.thread_type = "AUTO"
        stream.thread_count = max(1, threads)
        if stamps_by_index is not None:
            try:
                return _decode(container, stream, indices, size, stamps_by_index, max_pixels)
            except _SeekMissed:
                container.seek(0)
        return _decode(container, stream, indices, size, None, max_pixels)


class _SeekMissed(RuntimeError):
    """After the seek, a frame the packet timestamps do not name, or a first frame
    already past the one wanted."""


def sorted_pts(path: str) -> np.ndarray | None:
    """int64 [n_frames]: the best video stream's packet pts in presentation
    order (frame index -> pts), from a demux pass without decoding; None when
    some packet has no pts or two share one. Cached: a long video's units reuse it."""
    stat = os.stat(path)
    return _sorted_pts_of(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _sorted_pts_of(path: str, size: int, mtime_ns: int) -> np.ndarray | None:
    import av

    try:
        with av.open(path, "r") as container:
            stream: Any = container.streams.best("video")
            stamps = [packet.pts for packet in container.demux(stream) if packet.size > 0]
    except av.FFmpegError:
        return None  # damaged: decoding from the start finds where, and says so
    if not stamps or None in stamps:
        return None
    ordered = np.sort(np.asarray(stamps, np.int64))
    return ordered if np.all(np.diff(ordered) > 0) else None


def _index_of(pts: int | None, stamps_by_index: np.ndarray) -> int:
    """The frame index whose pts is `pts`, or -1."""
    if pts is None:
        return -1
    index = int(np.searchsorted(stamps_by_index, pts))
    return index if index < len(stamps_by_index) and stamps_by_index[index] == pts else -1


def _decode(container: Any, stream: Any, indices: np.ndarray, size: FrameSize,
            stamps_by_index: np.ndarray | None, max_pixels: int,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One forward pass; with `stamps_by_index`, first seek near indices[0] and
    name frames by their pts."""
    wanted = set(indices.tolist())
    first, last = int(indices[0]), int(indices[-1])
    seeking = stamps_by_index is not None
    if stamps_by_index is not None:
        if first >= len(stamps_by_index):
            raise _SeekMissed(f"frame {first} is past the stream's {len(stamps_by_index)}")
        container.seek(int(stamps_by_index[first]), stream=stream, backward=True)
    frames: list[np.ndarray] = []
    kept: list[int] = []
    stamps: list[float] = []
    index = -1
    rate = rate_if_no_frame_times(container, stream)
    frame: Any
    for count, frame in enumerate(container.decode(stream)):
        index = count if stamps_by_index is None else _index_of(frame.pts, stamps_by_index)
        if seeking and (index < 0 or (count == 0 and index > first)):
            raise _SeekMissed(f"frame pts {frame.pts} after seeking to frame {first}")
        if frame.width * frame.height > max_pixels:
            raise FrameTooLarge(f"frame {index} is {frame.width}x{frame.height} pixels, "
                                f"over the limit of {max_pixels} (--max-frame-pixels)")
        if index in wanted:
            frames.append(upright_rgb(frame, size, rotation_cw(frame)))
            kept.append(index)
            stamps.append(index / rate if rate else seconds_from_start(frame, stream))
        if index >= last:
            break
    reached_end = index < last
    stacked = (np.stack(frames) if frames
               else np.empty((0, size.height, size.width, 3), np.uint8))
    return (stacked, np.asarray(kept, np.int64), np.asarray(stamps, np.float64),
            index + 1 if reached_end else 0)


def rate_if_no_frame_times(container: Any, stream: Any) -> float | None:
    """The stream's frame rate when its container stores no frame times, else None."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if container.format.name in NO_FRAME_TIMES and rate else None


def seconds_from_start(frame: Any, stream: Any) -> float:
    """A frame's presentation time from the stream's start, as decord counts it
    (an MPEG-TS stream can start at 1.4 s, or hours in); NaN when it has none."""
    if frame.pts is None or frame.time_base is None:
        return float("nan")
    start = stream.start_time if stream.start_time is not None else 0
    return float((frame.pts - start) * frame.time_base)
