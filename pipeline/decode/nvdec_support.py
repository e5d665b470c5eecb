"""Which videos NVDEC (through PyNvVideoCodec) may decode, per video.

The verdict is a plain function of the video's probed stream (`StreamFacts`,
read with PyAV) and of what this GPU's NVDEC reports for that codec, chroma
format and bit depth (`NvdecLimits`, from cuvidGetDecoderCaps on the GPU; any
values in tests). It runs in the decoding process, once per video, and a
video it turns away is decoded on CPU (decord or PyAV), its reason logged.

Headers are hints: the facts choose a decoder, they do not size anything,
and the NVDEC decoder still checks the frames it gets (nvdec_decoder.py).

Conservative on purpose, until a GPU run measures more (README): only
mp4/mov files, only closed GOPs, only streams whose header frame count
equals their packets, which is what SimpleDecoder indexes by.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from pipeline.decode.frame_geometry import rotation_cw

# FFmpeg codec names NVDEC has a decoder for (cudaVideoCodec); the GPU's caps
# then say which chroma formats, bit depths and sizes it takes.
NVDEC_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "vp8", "mpeg1video", "mpeg2video",
                          "mpeg4", "vc1"})
# SimpleDecoder needs a frame count in the header to index frames ("Supported
# containers: MP4, MKV (containers with frame count in headers)", read in the
# library's strings); matroska keeps none per stream, so only mp4/mov for now.
NVDEC_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2"})


@dataclass(frozen=True, eq=False)  # eq=False: holds an array
class StreamFacts:
    """The best video stream of a file, as its headers and packets tell
    (sizes in pixels as coded, before the display rotation)."""

    container: str
    codec: str
    chroma: str  # "420", "422", "444", "400" (monochrome) or "" (RGB, unknown)
    bit_depth: int
    width: int
    height: int
    rotation: int  # clockwise degrees a player turns the picture (0/90/180/270)
    header_frames: int  # the container's count (what SimpleDecoder indexes by)
    packet_frames: int  # packets with data: the stream's real frame count
    frame_pts: np.ndarray | None  # int64 [n]: pts of frame i; None if not one per frame
    time_base: Fraction
    start_pts: int
    open_gop: bool


@dataclass(frozen=True)
class NvdecLimits:
    """What one GPU's NVDEC decodes for one (codec, chroma, bit depth): coded
    sizes in pixels, and macroblocks (16x16) per picture at most."""

    min_width: int
    min_height: int
    max_width: int
    max_height: int
    max_macroblocks: int


def why_not_nvdec(facts: StreamFacts | None,
                  limits_of: Callable[[], NvdecLimits | None]) -> str | None:
    """Why NVDEC should not decode this video (the CPU decoders will), or None.
    `limits_of()` asks this GPU what its NVDEC takes for the stream's codec,
    chroma format and bit depth (None: nothing); it is called last, only for
    a stream that passed every other check."""
    if facts is None:
        return "its stream header could not be read"
    if facts.codec not in NVDEC_CODECS:
        return f"NVDEC has no {facts.codec or 'unknown-codec'} decoder"
    if facts.container not in NVDEC_CONTAINERS:
        return f"NVDEC frame indexing is not verified in {facts.container}"
    if facts.header_frames != facts.packet_frames:
        return (f"the header counts {facts.header_frames} frames and the stream holds "
                f"{facts.packet_frames}")
    if facts.frame_pts is None:
        return "its frame times do not name frames one to one"
    if facts.open_gop:
        return "open GOP: NVDEC seeks are not verified exact on leading pictures"
    limits = limits_of()
    if limits is None:
        return (f"this GPU's NVDEC does not decode {facts.codec} {_chroma_name(facts.chroma)} "
                f"{facts.bit_depth}-bit")
    return _size_problem(facts, limits)


def frame_times_s(facts: StreamFacts, kept: np.ndarray) -> np.ndarray | None:
    """float64 [len(kept)]: seconds from the stream start of frames `kept` (the
    kept-th smallest packet pts, as PyAV's path counts frames), or None when
    pts do not name frames."""
    if facts.frame_pts is None:
        return None
    ticks = facts.frame_pts[kept] - facts.start_pts
    return np.asarray(ticks * float(facts.time_base), np.float64)


def _size_problem(facts: StreamFacts, limits: NvdecLimits) -> str | None:
    macroblocks = ((facts.width + 15) // 16) * ((facts.height + 15) // 16)
    if (facts.width < limits.min_width or facts.height < limits.min_height
            or facts.width > limits.max_width or facts.height > limits.max_height
            or macroblocks > limits.max_macroblocks):
        return (f"{facts.width}x{facts.height} is outside this GPU's NVDEC range for "
                f"{facts.codec} ({limits.min_width}x{limits.min_height} to "
                f"{limits.max_width}x{limits.max_height}, {limits.max_macroblocks} macroblocks)")
    return None


def _chroma_name(chroma: str) -> str:
    return {"400": "monochrome", "": "RGB"}.get(chroma, f"{chroma[0]}:{chroma[1]}:{chroma[2]}")


def chroma_of(pix_fmt: str) -> tuple[str, int]:
    """(chroma format, bit depth) of an FFmpeg pixel format, e.g. yuv420p10le ->
    ("420", 10); ("", 8) for RGB formats, ("", 0) when unknown."""
    import av

    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, TypeError):
        return "", 0
    bits = max((c.bits for c in fmt.components), default=0)
    if not any(c.is_luma for c in fmt.components):
        return "", bits
    if len(fmt.components) < 3:
        return "400", bits
    wide, tall = fmt.chroma_width(16) == 16, fmt.chroma_height(16) == 16
    return ("444" if wide and tall else "422" if tall else "420"), bits


def stream_facts(path: str) -> StreamFacts | None:
    """StreamFacts of the local video at `path`, or None when PyAV cannot read
    its header. One open of the file plus a demux pass (no decoding beyond the
    first frame, for its display matrix); cached: a video's units share it."""
    stat = os.stat(path)
    return _stream_facts(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _stream_facts(path: str, size: int, mtime_ns: int) -> StreamFacts | None:
    import av

    from pipeline.decode.containers import has_leading_pictures

    try:
        with av.open(path, "r") as container:
            stream = container.streams.best("video")
            if stream is None:
                return None
            ctx: Any = stream.codec_context
            chroma, bits = chroma_of(str(ctx.pix_fmt or ""))
            codec = str(getattr(ctx.codec, "canonical_name", None) or ctx.name or "")
            header_frames = int(stream.frames or 0)
            time_base, start_pts = Fraction(stream.time_base or 0), int(stream.start_time or 0)
            rotation = next((rotation_cw(f) for f in container.decode(stream)), 0)
            container.seek(0)
            stamps = [p.pts for p in container.demux(stream) if p.size > 0]
            facts = StreamFacts(
                container=str(container.format.name), codec=codec, chroma=chroma,
                bit_depth=bits, width=int(ctx.width or 0), height=int(ctx.height or 0),
                rotation=rotation, header_frames=header_frames, packet_frames=len(stamps),
                frame_pts=_frame_pts(stamps), time_base=time_base, start_pts=start_pts,
                open_gop=False)
        open_gop = has_leading_pictures(path)
    except (av.FFmpegError, OSError, ValueError):
        return None  # damaged: the CPU decoders judge it, and say why
    return dataclasses.replace(facts, open_gop=open_gop)


def _frame_pts(stamps: list[int | None]) -> np.ndarray | None:
    """int64 [n]: pts of frame i in presentation order, or None when some packet
    has no pts or two share one (then pts do not name frames)."""
    if not stamps or None in stamps:
        return None
    ordered = np.sort(np.asarray(stamps, np.int64))
    return ordered if bool(np.all(np.diff(ordered) > 0)) else None
