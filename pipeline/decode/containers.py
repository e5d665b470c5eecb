"""Which files decord decodes exact frames from, and why: each routing rule is
a `Route` naming the rows of the conformance matrix (docs/decoders.md,
tests/decode/conformance) that justify it; a test checks the table bears each
one out. decord gives wrong frames without failing, so it gets only what the
matrix shows it reads exactly; everything else goes to PyAV, which decodes
forward and counts every frame.

`why_not_decord` gives the decode worker every verdict from one open of the file.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from pipeline.decode.frame_geometry import rotation_cw


@dataclass(frozen=True)
class Route:
    """One routing rule: the decoder files it covers go to, why, and the matrix
    rows (file names in docs/decoders.md) it rests on. `precaution`: those rows
    did not measure decord wrong; the files go to PyAV anyway."""

    decoder: str  # "decord" or "pyav"
    reason: str
    rows: tuple[str, ...]
    demuxers: frozenset[str] = frozenset()  # FFmpeg's names; empty: a trait of the file
    precaution: bool = False
    covers: str = ""  # which files, in words, when no demuxer names them

    @property
    def files(self) -> str:
        """Which files the rule covers, for docs/decoders.md."""
        return self.covers or "; ".join(sorted(self.demuxers))


_MP4, _MATROSKA = "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
DECORD_CONTAINERS = Route(
    "decord", "decord's seeks are exact in mp4/mov and Matroska/WebM", demuxers=frozenset(
        {_MP4, _MATROSKA}), rows=("h264.mp4", "h264.mov", "h264.mkv", "h264_bframes.mp4",
                                  "h264_bframes.mov", "h264_bframes.mkv", "vp9.webm",
                                  "h264.frag.mp4", "h264.vfr.mp4", "h264_bframes.vfr.mkv"))
PYAV_CONTAINERS = (
    Route("pyav", "decord's seeks are not exact in MPEG-TS", demuxers=frozenset({"mpegts"}),
          rows=("h264_bframes.ts", "mpeg2.ts", "h264_open_gop.ts", "h264.ts")),
    Route("pyav", "decord's seeks are not exact in MPEG-PS", demuxers=frozenset({"mpeg"}),
          rows=("mpeg2.mpg",)),
    Route("pyav", "decord's seeks and times are not exact in AVI", demuxers=frozenset({"avi"}),
          rows=("h264.avi", "h264_bframes.avi", "mpeg4.avi")),
    Route("pyav", "decord is not measured wrong in FLV, but FLV is rarely indexed",
          demuxers=frozenset({"flv"}), rows=("h264.flv", "h264_bframes.flv"), precaution=True),
)
OTHER_CONTAINERS = Route("pyav", "decord is not measured in this container", rows=(),
                         precaution=True, covers="any other container")
# Leading pictures (an open GOP: x264's open-gop, x265's default) come out
# wrong after decord seeks to their keyframe; in the matrix, in fragmented mp4
# and MPEG-TS; earlier, in 21 of 120 random sparse reads of 150-frame HEVC mp4/mkv.
OPEN_GOP = Route("pyav", "decord's seeks are not exact in open GOPs",
                 rows=("hevc.frag.mp4", "hevc.mp4", "hevc.mkv", "hevc10.mp4",
                       "h264_open_gop.mp4", "h264_open_gop.mkv"),
                 covers="an open GOP in mp4/mov or Matroska")
# decord 0.6's FFmpeg reads no display matrix from Matroska: its frames stay as coded.
MATROSKA_ROTATION = Route("pyav", "decord ignores Matroska's display rotation",
                          demuxers=frozenset({_MATROSKA}),
                          rows=("h264.rot90.mkv", "h264.rot180.mkv", "h264.rot270.mkv"),
                          covers="a display rotation in Matroska")
# decord has no stream choice and its FFmpeg ranks streams its own way (in mp4,
# by bit rate: not the stream PyAV and the probe call best).
SEVERAL_STREAMS = Route("pyav", "decord may read another of its video streams",
                        rows=("h264.2streams.mp4", "h264.2streams.mkv"),
                        covers="several video streams in mp4/mov or Matroska")
# Not a decoder choice: AVI stores only a frame rate, and FFmpeg's guessed pts
# of B-frames there are a frame off, so a frame's time is its index over the rate.
NO_FRAME_TIMES_ROUTE = Route("pyav", "PyAV's frame times in AVI are index / rate (it stores "
                             "none)", demuxers=frozenset({"avi"}),
                             rows=("h264_bframes.avi", "h264.avi"))
NO_FRAME_TIMES = NO_FRAME_TIMES_ROUTE.demuxers
ROUTES = (DECORD_CONTAINERS, *PYAV_CONTAINERS, OTHER_CONTAINERS, OPEN_GOP, MATROSKA_ROTATION,
          SEVERAL_STREAMS, NO_FRAME_TIMES_ROUTE)


def decord_seeks_exactly(container: str) -> bool:
    """True when decord gives exact frames for this demuxer name."""
    return container in DECORD_CONTAINERS.demuxers


def container_route(container: str) -> Route:
    """The route of a demuxer name (PyAV's `container.format.name`)."""
    if decord_seeks_exactly(container):
        return DECORD_CONTAINERS
    return next((r for r in PYAV_CONTAINERS if container in r.demuxers), OTHER_CONTAINERS)


# Keyframes whose GOPs are looked at: an encoder's GOP structure is a setting,
# the same throughout a stream, and the first keyframe never has leading pictures.
GOPS_CHECKED = 3
# ...or this many packets, whichever comes first: a stream with one keyframe at
# the start (screen recordings, intra refresh) has no GOPs to look at, and is
# not read to its end for that.
PACKETS_CHECKED = 3000


def why_not_decord(path: str) -> str | None:
    """Why decord would give wrong frames for the local video at `path` (its
    container, or a trait of the file: see ROUTES), or None. One PyAV open of
    the file's head, cached: the units of one video share a local copy."""
    stat = os.stat(path)
    return _why_not_decord(path, stat.st_size, stat.st_mtime_ns)


def has_leading_pictures(path: str) -> bool:
    """True when a keyframe of the video's best stream, past the first, is
    followed in decode order by a packet shown before it: an open GOP.
    Reads only the first GOPS_CHECKED + 1 GOPs' packets, PACKETS_CHECKED at
    most (no decoding)."""
    import av

    with av.open(path, "r") as container:
        return _open_gop(container.demux(container.streams.best("video")))


@functools.lru_cache(maxsize=16)
def _why_not_decord(path: str, size: int, mtime_ns: int) -> str | None:
    import av

    try:
        with av.open(path, "r") as container:
            route = container_route(str(container.format.name))
            if route.decoder != "decord":
                return f"{route.reason} ({container.format.name})"
            return _trait_against_decord(container, size)
    except (av.FFmpegError, OSError, ValueError):
        pass  # damaged: decord's fault check and the PyAV retry judge it
    return None


def _trait_against_decord(container: Any, size: int) -> str | None:
    """Why decord would be wrong on this file of a container it reads exactly."""
    videos = [s for s in container.streams.video if not _attached_picture(s)]
    if len(videos) > 1:
        return f"{SEVERAL_STREAMS.reason} ({len(videos)})"
    stream = container.streams.best("video")
    if stream is None:
        return None
    if int(stream.frames or 0) > size:
        # decord sizes its index by this count and spins on the frames that are
        # not there (dmlc/decord #373; tests/hostile/test_lying_headers.py)
        return f"the header claims {stream.frames} frames in {size} bytes"
    if container.format.name in MATROSKA_ROTATION.demuxers and _rotated(container, stream):
        return MATROSKA_ROTATION.reason
    if _open_gop(container.demux(stream)):
        return OPEN_GOP.reason
    return None


def _attached_picture(stream: Any) -> bool:
    """A cover image stored as a one-frame video stream (no one's choice of video)."""
    import av

    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _rotated(container: Any, stream: Any) -> bool:
    """Whether the first frame has a display rotation; the container is then
    rewound (FFmpeg 7 keeps the display matrix on frames, not on the stream)."""
    rotation = next((rotation_cw(frame) for frame in container.decode(stream)), 0)
    container.seek(0)
    return rotation != 0


def _open_gop(packets: Any) -> bool:
    keyframes, keyframe_pts = 0, None
    for count, packet in enumerate(packets):
        if count >= PACKETS_CHECKED:
            return False
        if not packet.size or packet.pts is None:
            continue
        if packet.is_keyframe:
            keyframes += 1
            if keyframes > GOPS_CHECKED + 1:
                return False
            keyframe_pts = packet.pts if keyframes > 1 else None
        elif keyframe_pts is not None and packet.pts < keyframe_pts:
            return True
    return False
