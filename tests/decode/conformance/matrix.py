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

import numpy as np

import pipeline.decode.unit_decoder as unit_decoder
from pipeline.config import FrameSize
from pipeline.corpus.listing import list_corpus
from pipeline.decode.containers import NO_FRAME_TIMES
from pipeline.decode.unit_decoder import DecodeSettings, decode_unit
from pipeline.plan.work_unit import WorkUnit, unit_id_for
from pipeline.synthetic.video_writer import write_video

N_FRAMES, SIDE, FPS, GOP = 48, 64, 25, 12
SETTINGS = DecodeSettings(size=FrameSize(SIDE, SIDE))
SPARSE = (3, 17, 18, 30, 41, 47)  # out of GOP order: each read seeks


@dataclass(frozen=True)
class Case:
    """One file: a container (by extension) and an encoder setting of the writer."""

    container: str
    codec: str  # a video_writer codec: h264, h264_bframes, h264_open_gop, hevc...
    fragmented: bool = False  # an mp4 of moof fragments, no sample table up front

    @property
    def name(self) -> str:
        return f"{self.codec}{'.frag' if self.fragmented else ''}.{self.container}"

    @property
    def gop(self) -> str:
        return "open" if self.codec in ("hevc", "h264_open_gop") else "closed"

    @property
    def bframes(self) -> bool:
        return self.codec in ("h264_bframes", "h264_open_gop", "hevc", "hevc_closed_gop",
                              "hevc10")


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
) for container in containers] + [Case("mp4", codec, fragmented=True)
                                  for codec in ("h264", "h264_bframes", "hevc")]


def moving_texture(n: int) -> np.ndarray:
    """uint8 [n, SIDE, SIDE, 3]: a smooth texture sliding a pixel per frame, so
    encoders make ordinary GOPs (B-frames, leading pictures where asked) and
    every frame differs from its neighbours far more than coding blurs it."""
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (SIDE + 4, SIDE + n + 4, 3)).astype(np.float32)
    smooth = np.zeros((SIDE, SIDE + n, 3), np.float32)
    for dy in range(5):  # a 5x5 box blur
        for dx in range(5):
            smooth += noise[dy:dy + SIDE, dx:dx + SIDE + n]
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return np.stack([smooth[:, i:i + SIDE] for i in range(n)]).astype(np.uint8)


def forward_decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame (uint8 [F, H, W, 3]) and its time by decoding from the start.

    Times are what the tables promise: seconds from the stream's start; in a
    container that stores no frame times (AVI, MPEG-PS), index / frame rate."""
    import av

    frames, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        rate = float(stream.average_rate or stream.guessed_rate or FPS)
        timeless = container.format.name in NO_FRAME_TIMES
        for index, frame in enumerate(container.decode(stream)):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts, base = frame.pts, frame.time_base
            times.append(float((pts - start) * base)
                         if pts is not None and base is not None and not timeless
                         else index / rate)
    return np.stack(frames), np.asarray(times)


def write_case(case: Case, folder: Path) -> Path:
    path = folder / case.name
    muxer = {"movflags": "frag_keyframe+empty_moov"} if case.fragmented else None
    write_video(path, iter(moving_texture(N_FRAMES)), fps=FPS, codec=case.codec, gop=GOP,
                muxer_options=muxer)
    return path


def _read(path: Path, indices: tuple[int, ...]):  # -> DecodedUnit
    (ref,) = list_corpus(str(path))
    unit = WorkUnit(unit_id=unit_id_for(ref, "conformance", indices[0], indices[-1] + 1),
                    video=ref, unit_index=0, frame_indices=indices, fps=float(FPS))
    return decode_unit(SETTINGS, unit)


def verdict(path: Path, indices: tuple[int, ...], reference: tuple[np.ndarray, np.ndarray],
            decoder_shown: bool = True) -> str:
    """`exact`, or what went wrong, for reading `indices` of `path` as routed now."""
    frames, times = reference
    decoded = _read(path, indices)
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
    late = ~(np.abs(decoded.timestamps_s - times[list(indices)]) <= 0.5 / FPS)  # NaN is late
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
    out = {"file": case.name, "gop": case.gop, "b-frames": "yes" if case.bframes else "no"}
    original = unit_decoder.why_not_decord
    for name, route in PATHS.items():
        unit_decoder.why_not_decord = route or original  # type: ignore[assignment]
        try:
            for reads, indices in (("sparse", SPARSE), ("sequential", tuple(range(N_FRAMES)))):
                out[f"{name} {reads}"] = verdict(path, indices, reference)
        finally:
            unit_decoder.why_not_decord = original
    return out


def markdown(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    lines = ["# Decoder conformance", "",
             "<!-- generated by `python -m tests.decode.conformance.matrix` -->", "",
             f"Each file: {N_FRAMES} frames of {SIDE}x{SIDE} at {FPS} fps, a keyframe every "
             f"{GOP} frames, a texture sliding a pixel per frame. Each path reads frames "
             f"{', '.join(map(str, SPARSE))} (sparse, out of GOP order) and then every frame "
             "(sequential); a read is *exact* when every frame it returns is the one a "
             "forward PyAV decode gives at that index (closest by content) at that time "
             "(within half a frame). *routed* is what `vidlake label` does; the test suite "
             "holds it exact on every row. *decord* and *pyav* force one decoder: they say "
             "why the routing is what it is (decord's verdicts on seeks can differ between "
             "machines). In brackets, the decoder that decoded: forced decord still falls "
             "back to PyAV when decord cannot open a file (AV1, for decord 0.6) or calls "
             "its frames corrupt. Not in the matrix yet: variable frame rate, rotation, several "
             "video streams.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r[c] for c in columns) + " |" for r in rows]
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
