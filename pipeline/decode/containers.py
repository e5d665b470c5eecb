"""Which containers decord decodes exact frames from.

decord seeks through its own frame index. Measured on lossy and lossless test
videos (60 frames, GOP 12, sampled at frames 5, 15, 25, 40, 55; the pixel
values name the frame):

- mp4/mov/3gp and matroska/webm: right frames, sequential and sparse.
- MPEG-TS (h264, mpeg2): wrong frames even when read in order (one frame off,
  with duplicates); sparse reads are off by up to 196 of 255.
- MPEG-PS (.mpg, .vob) and AVI with B-frames: sequential reads are right,
  sparse reads land in the wrong GOP. decord's fault check catches only some of
  these.

Nothing fails, the frames are just wrong. So a video in any container outside
the list below is decoded by PyAV, which decodes forward and counts every
frame. FLV and ASF measured right too, but they are rarer and less often
indexed, so they go to PyAV as well.

Open GOPs defeat decord in every container: pictures that follow a keyframe
in decode order but show before it (leading pictures) come out wrong after a
seek. x265's default is open GOP; sparse reads of such HEVC mp4 and mkv files
(150 frames of moving texture, 4 random frames x 30) were wrong 21 times in
120, and 18 and 21 for h264 with x264's open-gop option; closed-GOP files 0.
`has_leading_pictures` spots them from the first GOPs' packet timestamps;
`why_not_decord` gives the decode worker both verdicts from one open.
"""

from __future__ import annotations

import functools
import os
from typing import Any

# FFmpeg demuxer names (PyAV's `container.format.name`).
DECORD_EXACT = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})


def decord_seeks_exactly(container: str) -> bool:
    """True when decord gives exact frames for this demuxer name."""
    return container in DECORD_EXACT


# Demuxers whose packets carry no presentation times (AVI stores only a frame
# rate): FFmpeg's guessed pts of B-frames there are a frame off, so a frame's
# time is its index over the rate.
NO_FRAME_TIMES = frozenset({"avi"})


# Keyframes whose GOPs are looked at: an encoder's GOP structure is a setting,
# the same throughout a stream, and the first keyframe never has leading pictures.
GOPS_CHECKED = 3
# ...or this many packets, whichever comes first: a stream with one keyframe at
# the start (screen recordings, intra refresh) has no GOPs to look at, and is
# not read to its end for that.
PACKETS_CHECKED = 3000


def why_not_decord(path: str) -> str | None:
    """Why decord would give wrong frames for the local video at `path` (its
    container, or an open GOP), or None. One PyAV open of the file's head,
    cached: the units of one video share a local copy."""
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
            if not decord_seeks_exactly(str(container.format.name)):
                return f"decord's seeks are not exact in {container.format.name}"
            stream = container.streams.best("video")
            if stream is not None and int(stream.frames or 0) > size:
                # decord sizes its index by this count and spins on the frames
                # that are not there (dmlc/decord #373); PyAV decodes what exists
                return f"the header claims {stream.frames} frames in {size} bytes"
            if _open_gop(container.demux(stream)):
                return "decord's seeks are not exact in open GOPs"
    except (av.FFmpegError, OSError, ValueError):
        pass  # damaged: decord's fault check and the PyAV retry judge it
    return None


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
