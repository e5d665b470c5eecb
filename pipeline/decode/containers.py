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
"""

from __future__ import annotations

# FFmpeg demuxer names (PyAV's `container.format.name`).
DECORD_EXACT = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})


def decord_seeks_exactly(container: str) -> bool:
    """True when decord gives exact frames for this demuxer name. An unknown
    name (a VideoInfo made without probing) keeps decord."""
    return not container or container in DECORD_EXACT


# Demuxers whose packets carry no presentation times (AVI stores only a frame
# rate): FFmpeg's guessed pts of B-frames there are a frame off, so a frame's
# time is its index over the rate.
NO_FRAME_TIMES = frozenset({"avi"})
