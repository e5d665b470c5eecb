"""Read container metadata with PyAV (header only, range reads on object storage).

PyAV picks the stream FFmpeg calls "best" (av_find_best_stream), the same rule
decord uses, so both decoders agree on which stream is analysed in multi-stream
files. Frame counts come from the container when it stores them (mp4/mov);
otherwise the stream's packets are counted, which reads the file but decodes
nothing.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.frame_geometry import rotation_cw
from pipeline.plan.video_info import VideoInfo
from pipeline.storage import StorageOptions, filesystem, fs_path, is_remote
from pipeline.storage_retry import with_retries

log = logging.getLogger(__name__)


def _count_packets(container: Any, stream: Any) -> int:
    count = 0
    for packet in container.demux(stream):
        if packet.size > 0:
            count += 1
    return count


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


def _fps(stream: Any, n_frames: int, duration_s: float) -> float:
    rate = stream.average_rate or stream.guessed_rate
    if rate:
        return float(Fraction(rate))
    return n_frames / duration_s if duration_s > 0 else 0.0


def _duration_s(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def _info_from_container(ref: VideoRef, container: Any) -> VideoInfo:
    if not container.streams.video:
        return VideoInfo(ref, error="no video stream in the container")
    stream = container.streams.best("video")
    ctx = stream.codec_context
    rotation = _rotation(container, stream)
    n_frames = int(stream.frames or 0)
    if n_frames <= 0:
        container.seek(0)
        n_frames = _count_packets(container, stream)
    if n_frames <= 0:
        return VideoInfo(ref, codec=_codec_name(ctx), error="video stream holds no frames")
    duration_s = _duration_s(container, stream)
    fps = _fps(stream, n_frames, duration_s)
    if duration_s <= 0 and fps > 0:
        duration_s = n_frames / fps
    # Frames are analysed upright (see frame_geometry), so sizes are as displayed.
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(ref, codec=_codec_name(ctx), container=str(container.format.name),
                     width=width, height=height, fps=fps, n_frames=n_frames,
                     duration_s=duration_s, stream_index=stream.index, rotation=rotation)


def ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's message without the errno number and file name PyAV adds."""
    return str(getattr(exc, "strerror", None) or exc).strip()


def probe_video(ref: VideoRef, options: StorageOptions | None = None) -> VideoInfo:
    """Probe one video. Never raises for bad input: the reason goes to `error`."""
    import av

    if ref.etag == "missing":
        return VideoInfo(ref, error="object not found")
    if ref.size_bytes == 0:
        return VideoInfo(ref, error="empty file (0 bytes)")
    def probe_remote() -> VideoInfo:
        fs = filesystem(ref.uri, options)
        with fs.open(fs_path(ref.uri), "rb", block_size=1 << 20) as handle, \
                av.open(handle, "r") as container:
            return _info_from_container(ref, container)

    try:
        if is_remote(ref.uri):
            # A store that is down is not this video's fault: retried, then a
            # StorageError that stops the run (with_retries).
            return with_retries(probe_remote, f"read {ref.uri}")
        with av.open(ref.uri, "r") as container:
            return _info_from_container(ref, container)
    except av.FFmpegError as exc:
        return VideoInfo(ref, error=f"not a readable video: {ffmpeg_reason(exc)}")
    except (OSError, ValueError, EOFError) as exc:
        # OSError: unreadable object or permission; ValueError/EOFError: PyAV on
        # malformed headers. All are per-video problems, recorded, not raised.
        return VideoInfo(ref, error=f"cannot read: {type(exc).__name__}: {exc}")


def probe_videos(refs: list[VideoRef], options: StorageOptions | None = None) -> list[VideoInfo]:
    """Probe several videos in order (one Ray task runs one such batch)."""
    return [probe_video(ref, options) for ref in refs]
