"""Read container metadata with PyAV (header only, range reads on object storage).

PyAV picks the stream FFmpeg calls "best" (av_find_best_stream). decord has no
choice of stream and its older FFmpeg can rank them otherwise, so a file with
several video streams is decoded by PyAV too (decode/containers.py). Frame
counts come from the container when it stores them (mp4/mov); otherwise the
stream's packets are counted, which reads the file but decodes nothing.

Headers are hints: a stored frame count is used only when it is plausible
(no more frames than bytes in the file, and about duration x rate when both
are known); otherwise the packets are counted instead. A picture larger than
`max_frame_pixels` makes the video an error before any frame is decoded.
Rates, durations and sizes that are not finite and positive are unknown (0).
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from typing import Any

import numpy as np

from pipeline.config import DEFAULT_MAX_FRAME_PIXELS
from pipeline.corpus.listing import LINK_ETAG
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.frame_geometry import rotation_cw
from pipeline.plan.video_info import VideoInfo
from pipeline.storage import filesystem, fs_path, is_remote
from pipeline.storage_options import StorageOptions
from pipeline.storage_retry import with_retries

log = logging.getLogger(__name__)


def _count_packets(container: Any, stream: Any) -> int:
    count = 0
    for packet in container.demux(stream):
        if packet.size > 0:
            count += 1
    return count


def keyframe_indices(container: Any, stream: Any) -> tuple[np.ndarray, int]:
    """(int64 [K] sorted frame indices of the stream's keyframes, packets in the
    stream) from one pass over its packets, decoding nothing.

    A frame's index is its packet's rank by presentation time; when some packet
    has no time or two share one (AVI), its rank in decode order, which is the
    same for keyframes of closed GOPs. A stream that flags no keyframe gets
    frame 0: decoding from the start always reaches it."""
    container.seek(0)
    stamps, flags = [], []
    for packet in container.demux(stream):
        if packet.size > 0:
            stamps.append(packet.pts)
            flags.append(bool(packet.is_keyframe))
    keyed = np.flatnonzero(np.asarray(flags, bool))
    if stamps and None not in stamps:
        pts = np.asarray(stamps, np.int64)
        order = np.argsort(pts, kind="stable")
        if np.all(np.diff(pts[order]) > 0):
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            keyed = np.sort(rank[keyed])
    return (keyed.astype(np.int64) if keyed.size else np.zeros(1, np.int64)), len(stamps)


def _rotation(container: Any, stream: Any) -> int:
    """Clockwise display rotation in degrees, read off the first frame's display
    matrix (FFmpeg 7 keeps it there, not in stream metadata). Decoding that
    frame also proves the stream decodes at all. Returns 0 when there is none."""
    for frame in container.decode(stream):
        return rotation_cw(frame)
    return 0


def _codec_name(ctx: Any) -> str:
    """The codec's name ("av1"), not the decoder library's ("libdav1d")."""
    codec = getattr(ctx, "codec", None)
    return str(getattr(codec, "canonical_name", None) or ctx.name or "")


# Highest frame rate taken at face value (high-speed cameras record up to a
# few thousand frames per second); above it the rate is unknown.
MAX_FPS = 10_000.0
# A stored count within this share of duration x rate (plus two frames) is
# believed: rounding, edit lists and a last frame's duration differ that much.
_COUNT_SLACK = 0.25


def _finite_positive(value: float, limit: float = float("inf")) -> float:
    """`value` when it is a finite number in (0, limit], else 0 (unknown)."""
    return value if math.isfinite(value) and 0 < value <= limit else 0.0


def _fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate
    try:
        return _finite_positive(float(Fraction(rate)), MAX_FPS) if rate else 0.0
    except (ValueError, ZeroDivisionError, OverflowError):
        return 0.0


def _duration_s(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return _finite_positive(float(stream.duration * stream.time_base))
    if container.duration is not None:
        return _finite_positive(container.duration / 1_000_000)
    return 0.0


def plausible_count(n_frames: int, size_bytes: int, duration_s: float, fps: float) -> bool:
    """Whether a frame count a header stores can be believed: every frame takes
    at least a byte of the file, and the count is about duration x rate when
    the header gives both."""
    if n_frames <= 0 or (size_bytes > 0 and n_frames > size_bytes):
        return False
    if duration_s > 0 and fps > 0:
        expected = duration_s * fps
        return abs(n_frames - expected) <= _COUNT_SLACK * expected + 2
    return True


def _frame_count(container: Any, stream: Any, ref: VideoRef, duration_s: float,
                 fps: float, packets: int | None) -> int:
    """The stored count when plausible, else the stream's packets counted
    (`packets`, when a pass over them already counted)."""
    stored = int(stream.frames or 0)
    if plausible_count(stored, ref.size_bytes, duration_s, fps):
        return stored
    if packets is not None:
        return packets
    if stored > 0:
        log.info("%s: the header's frame count %d is implausible (%d bytes, %.3f s at "
                 "%.3f fps); counting packets", ref.uri, stored, ref.size_bytes, duration_s, fps)
    container.seek(0)
    return _count_packets(container, stream)


def _info_from_container(ref: VideoRef, container: Any, max_frame_pixels: int,
                         keyframes: bool) -> VideoInfo:
    if not container.streams.video:
        return VideoInfo(ref, error="no video stream in the container")
    stream = container.streams.best("video")
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width * height > max_frame_pixels:  # checked before a single frame is decoded
        return VideoInfo(ref, codec=_codec_name(ctx), container=str(container.format.name),
                         error=f"frames of {width}x{height} = {width * height} pixels are "
                               f"over the --max-frame-pixels limit of {max_frame_pixels}")
    rotation = _rotation(container, stream)
    duration_s, fps = _duration_s(container, stream), _fps(stream)
    keys, packets = keyframe_indices(container, stream) if keyframes else (None, None)
    n_frames = _frame_count(container, stream, ref, duration_s, fps, packets)
    if n_frames <= 0:
        return VideoInfo(ref, codec=_codec_name(ctx), error="video stream holds no frames")
    if packets is not None and packets < n_frames:
        # the index would sample only what is left: say the file is cut short,
        # as an exact read past the cut would
        return VideoInfo(ref, codec=_codec_name(ctx), error=f"truncated: the stream holds "
                         f"{packets} of the {n_frames} frames its header lists")
    if keys is not None:
        keys = keys[keys < n_frames]
    if fps <= 0 < duration_s:
        fps = _finite_positive(n_frames / duration_s, MAX_FPS)
    if fps > 0 and (duration_s <= 0 or not plausible_count(n_frames, 0, duration_s, fps)):
        duration_s = n_frames / fps  # the count is known good: trust it over the header
    # Frames are analysed upright (see frame_geometry), so sizes are as displayed.
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(ref, codec=_codec_name(ctx), container=str(container.format.name),
                     width=width, height=height, fps=fps, n_frames=n_frames,
                     duration_s=duration_s, stream_index=stream.index, rotation=rotation,
                     keyframes=keys)


def ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's message without the errno number and file name PyAV adds."""
    return str(getattr(exc, "strerror", None) or exc).strip()


def probe_video(ref: VideoRef, options: StorageOptions | None = None, *,
                max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
                keyframes: bool = False) -> VideoInfo:
    """Probe one video; with `keyframes`, also index its keyframes (a pass over
    every packet: reads the whole file). Never raises for bad input: the reason
    goes to `error`."""
    import av

    if ref.etag == "missing":
        return VideoInfo(ref, error="object not found")
    if ref.etag.startswith(LINK_ETAG):
        problem = ref.etag.removeprefix(LINK_ETAG)
        reasons = {"loop": "symbolic link loop", "broken": "broken symbolic link: its target "
                   "does not exist", "not-a-file": "symbolic link to something not a file"}
        return VideoInfo(ref, error=reasons.get(problem, "unreadable symbolic link"))
    if ref.size_bytes == 0:
        return VideoInfo(ref, error="empty file (0 bytes)")
    def probe_remote() -> VideoInfo:
        fs = filesystem(ref.uri, options)
        with fs.open(fs_path(ref.uri), "rb", block_size=1 << 20) as handle, \
                av.open(handle, "r") as container:
            return _info_from_container(ref, container, max_frame_pixels, keyframes)

    try:
        if is_remote(ref.uri):
            # A store that is down is not this video's fault: retried, then a
            # StorageError that stops the run (with_retries).
            return with_retries(probe_remote, f"read {ref.uri}")
        with av.open(ref.uri, "r") as container:
            return _info_from_container(ref, container, max_frame_pixels, keyframes)
    except av.FFmpegError as exc:
        return VideoInfo(ref, error=f"not a readable video: {ffmpeg_reason(exc)}")
    except (OSError, ValueError, EOFError) as exc:
        # OSError: unreadable object or permission; ValueError/EOFError: PyAV on
        # malformed headers. All are per-video problems, recorded, not raised.
        return VideoInfo(ref, error=f"cannot read: {type(exc).__name__}: {exc}")


def probe_videos(refs: list[VideoRef], options: StorageOptions | None = None, *,
                 max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
                 keyframes: bool = False) -> list[VideoInfo]:
    """Probe several videos in order (one Ray task runs one such batch)."""
    return [probe_video(ref, options, max_frame_pixels=max_frame_pixels, keyframes=keyframes)
            for ref in refs]
