"""Video files whose headers lie, made by the tests: an AVI that claims 2**31-1
frames and holds 10, one that claims 100 (plausibly) and holds 10, and a few
KB of MJPEG whose headers claim 16000x16000 pixels."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np

from pipeline.synthetic.video_writer import index_pattern_frames, write_video

REAL_FRAMES = 10
HUGE_SIDE = 16_000


def _set_avi_frame_count(raw: bytearray, claimed: int) -> None:
    """Patch the AVI main header's dwTotalFrames and the video stream header's
    dwLength (the counts FFmpeg reports as the stream's frames)."""
    avih = raw.find(b"avih")
    strh = raw.find(b"strh")
    if avih < 0 or strh < 0 or raw[strh + 8 : strh + 12] != b"vids":
        raise ValueError("not an AVI with a video stream header")
    raw[avih + 8 + 16 : avih + 8 + 20] = struct.pack("<I", claimed)
    raw[strh + 8 + 32 : strh + 8 + 36] = struct.pack("<I", claimed)


def write_lying_avi(path: Path, claimed: int) -> Path:
    """An MPEG-4 AVI of REAL_FRAMES index-pattern frames whose headers claim `claimed`."""
    real = path.with_suffix(".real.avi")
    write_video(real, index_pattern_frames(REAL_FRAMES), fps=25, codec="mpeg4")
    raw = bytearray(real.read_bytes())
    real.unlink()
    _set_avi_frame_count(raw, claimed)
    path.write_bytes(bytes(raw))
    return path


def write_huge_mjpeg_avi(path: Path, frames: int = 5) -> Path:
    """A few KB of 16x16 MJPEG in AVI whose JPEG and AVI headers say 16000x16000:
    a decoder would allocate ~1 GB per RGB frame."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuvj420p"
        for index in range(frames):
            picture = np.full((16, 16, 3), index * 40, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    raw = bytearray(path.read_bytes())
    side = struct.pack(">H", HUGE_SIDE)
    start = raw.find(b"\xff\xc0")  # each JPEG's SOF0: length, precision, height, width
    while start >= 0:
        raw[start + 5 : start + 7], raw[start + 7 : start + 9] = side, side
        start = raw.find(b"\xff\xc0", start + 2)
    for chunk, offset in ((b"strf", 4), (b"avih", 32)):  # BITMAPINFOHEADER, main header
        at = raw.find(chunk) + 8 + offset
        raw[at : at + 8] = struct.pack("<ii", HUGE_SIDE, HUGE_SIDE)
    path.write_bytes(bytes(raw))
    return path
