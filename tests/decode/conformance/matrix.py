"""The decoder conformance matrix: files the project claims to read, and what
each decoder path returns for sparse and sequential reads of them, compared
with a forward PyAV decode of the same file (frame content, index and time).

    python -m tests.decode.conformance.matrix   # writes docs/decoders.md

`tests/decode/conformance/test_conformance.py` holds the routed path (what
`vidlake label` does) to exactness on every row.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import pipeline.decode.unit_decoder as unit_decoder
from pipeline.config import FrameSize
from pipeline.corpus.listing import list_corpus
from pipeline.decode.containers import NO_FRAME_TIMES, ROUTES
from pipeline.decode.frame_geometry import quarter_turns, rotation_cw
from pipeline.decode.unit_decoder import DecodeSettings, decode_unit
from pipeline.plan.probe import probe_video
from pipeline.plan.work_unit import WorkUnit, unit_id_for
from pipeline.synthetic.video_writer import write_video

N_FRAMES, SIDE, FPS, GOP = 48, 64, 25, 12
SPARSE = (3, 17, 18, 30, 41, 47)  # out of GOP order: each read seeks
WIDE = (48, 64)  # (height, width) of rotated files: a wrong turn changes the shape
SECOND = (64, 96)  # (height, width) of a second video stream: larger, other content


@dataclass(frozen=True)
class Case:
    """One file: a container (by extension), an encoder setting of the writer,
    and what else the file holds. Its GOP and B-frames are read off the file
    (`structure`), not assumed from the encoder setting."""

    container: str
    codec: str  # a video_writer codec: h264, h264_bframes, h264_open_gop, hevc...
    fragmented: bool = False  # an mp4 of moof fragments, no sample table up front
    vfr: bool = False  # frame durations of 20, 40 or 60 ms, in no pattern
    rotation: int = 0  # clockwise degrees of the display matrix; frames are 64x48
    streams: int = 1  # video streams; the second is larger, with other content

    @property
    def name(self) -> str:
        parts = [self.codec, "frag" * self.fragmented, "vfr" * self.vfr,
                 f"rot{self.rotation}" * bool(self.rotation),
                 f"{self.streams}streams" * (self.streams > 1), self.container]
        return ".".join(p for p in parts if p)


CASES = [Case(container, codec) for codec, containers in (
    ("h264", ("mp4", "mov", "mkv", "ts", "avi", "flv")),
    ("h264_bframes", ("mp4", "mov", "mkv", "ts", "avi", "flv")),
    ("h264_open_gop", ("mp4", "mkv", "ts")),
    ("h264_10bit", ("mp4", "mkv")),
    ("hevc", ("mp4", "mkv", "ts")),
    ("hevc_closed_gop", ("mp4", "mkv")),
    ("hevc10", ("mp4", "mkv")),
    ("vp9", ("webm", "mkv")),
    ("av1", ("mp4", "mkv", "webm")),
    ("mpeg4", ("avi", "mp4", "mkv")),
    ("mpeg2", ("mpg", "ts", "mkv")),
) for container in containers] + [
    *(Case("mp4", codec, fragmented=True) for codec in ("h264", "h264_bframes", "hevc")),
    *(Case(container, codec, vfr=True) for codec in ("h264", "h264_bframes")
      for container in ("mp4", "mkv")),
    *(Case(container, "h264", rotation=degrees) for container in ("mp4", "mov", "mkv")
      for degrees in (90, 180, 270)),
    *(Case(container, "h264", streams=2) for container in ("mp4", "mkv")),
]


def moving_texture(n: int, height: int = SIDE, width: int = SIDE, seed: int = 5) -> np.ndarray:
    """uint8 [n, height, width, 3]: a smooth texture sliding a pixel per frame, so
    encoders make ordinary GOPs (B-frames, leading pictures where asked) and
    every frame differs from its neighbours far more than coding blurs it."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height + 4, width + n + 4, 3)).astype(np.float32)
    smooth = np.zeros((height, width + n, 3), np.float32)
    for dy in range(5):  # a 5x5 box blur
        for dx in range(5):
            smooth += noise[dy:dy + height, dx:dx + width + n]
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return np.stack([smooth[:, i:i + width] for i in range(n)]).astype(np.uint8)


def vfr_times(n: int) -> np.ndarray:
    """float64 [n]: presentation times (s) a variable 20, 40 or 60 ms apart."""
    gaps = np.random.default_rng(7).choice([0.02, 0.04, 0.06], n - 1)
    return np.concatenate([[0.0], np.cumsum(gaps)])


class Reference(NamedTuple):
    """A forward PyAV decode of the best video stream: upright frames uint8
    [F, H, W, 3], their times (s from the stream's start) [F], and whether
    any is a B-frame."""

    frames: np.ndarray
    times: np.ndarray
    b_frames: bool


def forward_decode(path: Path) -> Reference:
    """Every frame of the stream the project reads (`streams.best("video")`),
    upright, and its time, by decoding from the start.

    Times are what the tables promise: seconds from the stream's start; in a
    container that stores no frame times (AVI, MPEG-PS), index / frame rate."""
    import av

    frames, times, b_frames = [], [], False
    frame: Any
    with av.open(str(path)) as container:
        stream: Any = container.streams.best("video")
        start = stream.start_time or 0
        rate = float(stream.average_rate or stream.guessed_rate or FPS)
        timeless = container.format.name in NO_FRAME_TIMES
        for index, frame in enumerate(container.decode(stream)):
            rgb = frame.to_ndarray(format="rgb24")
            frames.append(np.rot90(rgb, quarter_turns(rotation_cw(frame))))
            b_frames |= frame.pict_type == av.video.frame.PictureType.B
            pts, base = frame.pts, frame.time_base
            times.append(float((pts - start) * base)
                         if pts is not None and base is not None and not timeless
                         else index / rate)
    return Reference(np.stack(frames), np.asarray(times), bool(b_frames))


def gop_of(path: Path) -> str:
    """"open" when a keyframe past the first is followed, in decode order, by a
    packet shown before it (a leading picture), anywhere in the best stream."""
    import av

    keyframes, keyframe_pts = 0, None
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.best("video")):
            if not packet.size or packet.pts is None:
                continue
            if packet.is_keyframe:
                keyframes += 1
                keyframe_pts = packet.pts if keyframes > 1 else None
            elif keyframe_pts is not None and packet.pts < keyframe_pts:
                return "open"
    return "closed"


def write_case(case: Case, folder: Path) -> Path:
    path = folder / case.name
    muxer = {"movflags": "frag_keyframe+empty_moov"} if case.fragmented else None
    shape = WIDE if case.rotation else (SIDE, SIDE)
    more = [moving_texture(N_FRAMES, *SECOND, seed=6)[:, ::-1]] * (case.streams - 1)
    write_video(path, iter(moving_texture(N_FRAMES, *shape)), fps=FPS, codec=case.codec,
                gop=GOP, muxer_options=muxer, rotation=case.rotation,
                times_s=vfr_times(N_FRAMES).tolist() if case.vfr else None, more_streams=more)
    return path


def _read(path: Path, indices: tuple[int, ...], size: FrameSize,
          keyframes_only: bool):  # -> DecodedUnit
    (ref,) = list_corpus(str(path))
    unit = WorkUnit(unit_id=unit_id_for(ref, "conformance", indices[0], indices[-1] + 1),
                    video=ref, unit_index=0, frame_indices=indices, fps=float(FPS),
                    keyframes_only=keyframes_only)
    return decode_unit(DecodeSettings(size=size), unit)


def keyframes_of(path: Path) -> tuple[int, ...]:
    """The keyframe indices the probe finds (what `--sample keyframes` reads)."""
    (ref,) = list_corpus(str(path))
    keys = probe_video(ref, keyframes=True).keyframes
    return tuple(int(k) for k in keys) if keys is not None else ()


def verdict(path: Path, indices: tuple[int, ...], reference: Reference,
            decoder_shown: bool = True, keyframes_only: bool = False) -> str:
    """`exact`, or what went wrong, for reading `indices` of `path` as routed now
    (`keyframes_only`: as planned for a keyframe sample), at the reference's
    (upright) size."""
    frames, times = reference.frames, reference.times
    decoded = _read(path, indices, FrameSize(frames.shape[2], frames.shape[1]),
                    keyframes_only)
    if not decoded.ok:
        return f"error: {decoded.error}"
    used = f" ({decoded.decoder})" if decoder_shown else ""
    if tuple(int(i) for i in decoded.frame_indices) != indices:
        return "wrong indices" + used
    errors = np.abs(frames[None].astype(np.int16) - decoded.frames[:, None].astype(np.int16))
    closest = errors.mean(axis=(2, 3, 4)).argmin(axis=1)
    wrong = int(np.sum(closest != np.asarray(indices)))
    if wrong:
        return f"wrong frames ({wrong} of {len(indices)})" + used
    tolerance = 0.5 * float(np.diff(np.sort(times)).min())  # half the smallest gap
    late = ~(np.abs(decoded.timestamps_s - times[list(indices)]) <= tolerance)  # NaN is late
    return (f"wrong times ({int(late.sum())} of {len(indices)})" if late.any() else "exact") \
        + used


PATHS: dict[str, Callable[[str], str | None] | None] = {
    "routed": None,  # what vidlake does: decord where it is exact, else PyAV
    "decord": lambda _path: None,  # decord whatever the file
    "pyav": lambda _path: "forced",  # PyAV whatever the file
}


def row(case: Case, folder: Path) -> dict[str, str]:
    """The verdicts of every path, sparse and sequential, for `case`."""
    path = write_case(case, folder)
    reference = forward_decode(path)
    out = {"file": case.name, "gop": gop_of(path),
           "b-frames": "yes" if reference.b_frames else "no"}
    original = unit_decoder.why_not_decord
    for name, route in PATHS.items():
        unit_decoder.why_not_decord = route or original  # type: ignore[assignment]
        try:
            for reads, indices in (("sparse", SPARSE), ("sequential", tuple(range(N_FRAMES)))):
                out[f"{name} {reads}"] = verdict(path, indices, reference)
        finally:
            unit_decoder.why_not_decord = original
    out["keyframes"] = verdict(path, keyframes_of(path), reference, keyframes_only=True)
    return out


INTRO = (
    f"Each file: {N_FRAMES} frames of {SIDE}x{SIDE} at {FPS} fps, a keyframe every {GOP} "
    "frames, a texture sliding a pixel per frame. Beyond the container and the encoder "
    "setting, a name says what else the file holds: *frag*, an mp4 of moof fragments; "
    "*vfr*, frame durations of 20, 40 or 60 ms in no pattern (times written explicitly); "
    f"*rotN*, {WIDE[1]}x{WIDE[0]} pictures with a display matrix turning them N degrees "
    f"clockwise; *2streams*, a second, larger video stream ({SECOND[1]}x{SECOND[0]}) of "
    "other content. *gop* and *b-frames* are read off each file: open when a keyframe "
    "past the first is followed in decode order by a packet shown before it; B-frames "
    "when a decoded picture is of type B. Each path reads frames "
    f"{', '.join(map(str, SPARSE))} (sparse, out of GOP order) and then every frame "
    "(sequential) of the video stream PyAV calls best (the one the project reads) at its "
    "displayed size; a read is *exact* when every frame it returns is the one a forward "
    "PyAV decode, turned upright by its display matrix, gives at that index (closest by "
    "content) at that time (within half the smallest gap between two frames). *routed* "
    "is what `vidlake label` does; the test suite holds it exact on every row. *decord* "
    "and *pyav* force one decoder: they say why the routing is what it is (decord's "
    "verdicts on seeks can differ between machines and versions). In brackets, the "
    "decoder that decoded: forced decord still falls back to PyAV when decord cannot "
    "open a file (AV1, for decord 0.6), cannot size its frames, or calls them corrupt. "
    "*keyframes* reads every keyframe the probe finds, as `--sample keyframes` does: "
    "each decoded alone from its own packet (pyav-keyframes).")
ROUTES_INTRO = (
    "The routing (`ROUTES` in pipeline/decode/containers.py), each rule with the rows "
    "above that it rests on. A test holds each rule to the table: a rule sending files "
    "to decord cites rows routed to decord and exact; one sending them to PyAV cites a "
    "row where forced decord was not exact by itself, unless it says it is a "
    "precaution.")


def markdown(rows: list[dict[str, str]]) -> str:
    """docs/decoders.md: the matrix, then the routing rules citing its rows."""
    columns = list(rows[0])
    lines = ["# Decoder conformance", "",
             "<!-- generated by `python -m tests.decode.conformance.matrix` -->", "",
             INTRO, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows]
    lines += ["", "## Routing", "", ROUTES_INTRO, "",
              "| decoder | files | reason | rows |", "|---|---|---|---|"]
    for route in ROUTES:
        kind = " (a precaution)" if route.precaution else ""
        lines.append(f"| {route.decoder} | {route.files} | {route.reason}{kind} | "
                     f"{', '.join(route.rows) or '(none in the matrix)'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        rows = [row(case, Path(folder)) for case in CASES]
    out = Path(__file__).resolve().parents[3] / "docs" / "decoders.md"
    out.write_text(markdown(rows))
    print(f"wrote {out} ({len(rows)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
