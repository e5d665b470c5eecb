"""Keyframe sampling against exact sampling, side by side in one run.

    python -m jobs.benchmark keyframes [--work-dir .cache/bench]

Two 60 s 1280x720 H.264 videos of the same moving picture, one with a
keyframe every 250 frames (x264's default, long GOP) and one every 25 (short
GOP). For each, and each sample (`uniform:8`, `fps:1`, their `~` forms and
`keyframes`), what `vidlake label` does per video: probe, plan, decode every
unit on the routed path (decord or PyAV, or keyframes alone). Reported: best
of 3 wall seconds, sampled frames per second, and pictures decoded per sampled
frame. Decoded pictures are counted for the keyframe path (one per frame) and
computed for the exact path from the keyframe positions: an exact read decodes
from the keyframe at or before its first target in a GOP, through each later
target of that GOP (what decord and PyAV do after a seek).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.config import AnalysisSpec, FrameSize, SampleSpec
from pipeline.corpus.listing import list_corpus
from pipeline.decode.unit_decoder import DecodeSettings, decode_units
from pipeline.plan.planner import plan_video
from pipeline.plan.probe import probe_video

SECONDS, FPS, WIDTH, HEIGHT = 60, 25, 1280, 720
GOPS = {"long GOP (250)": 250, "short GOP (25)": 25}
SAMPLES = ("uniform:8", "uniform:8~", "fps:1", "fps:1~", "keyframes")
SETTINGS = DecodeSettings(size=FrameSize(224, 224))
REPEATS = 3


def _picture(n: int) -> Iterator[np.ndarray]:
    """Frames uint8 [HEIGHT, WIDTH, 3]: smooth colour bands drifting 4 pixels
    per frame, with a bright square crossing them (cheap to encode, never still)."""
    x = np.arange(WIDTH, dtype=np.float32)
    y = np.arange(HEIGHT, dtype=np.float32)[:, None]
    for i in range(n):
        frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        frame[..., 0] = (127 + 120 * np.sin((x + 4 * i) / 90)).astype(np.uint8)
        frame[..., 1] = (127 + 120 * np.sin((y + 2 * i) / 70)).astype(np.uint8)
        frame[..., 2] = ((x + y + 3 * i) % 256).astype(np.uint8)
        left = (8 * i) % (WIDTH - 100)
        frame[300:400, left:left + 100] = 255
        yield frame


def prepare(work: Path) -> dict[str, Path]:
    """The two videos (cached under `work`)."""
    from pipeline.synthetic.video_writer import write_video

    folder = work / "keyframes"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, gop in GOPS.items():
        path = paths[name] = folder / f"gop{gop}.mp4"
        if not path.exists():
            write_video(path.with_suffix(".part.mp4"), _picture(SECONDS * FPS), fps=FPS,
                        codec="h264", gop=gop)
            path.with_suffix(".part.mp4").rename(path)
    return paths


def decoded_pictures(targets: np.ndarray, keyframes: np.ndarray) -> int:
    """Pictures an exact sparse read of sorted `targets` decodes: from the
    keyframe at or before each GOP's first target to its last target."""
    gop_of = np.searchsorted(keyframes, targets, side="right") - 1
    total, last_gop, last = 0, -1, 0
    for target, gop in zip(targets.tolist(), gop_of.tolist(), strict=True):
        start = last + 1 if gop == last_gop else int(keyframes[max(gop, 0)])
        total += target - start + 1
        last_gop, last = gop, target
    return total


def label_one(path: Path, sample: SampleSpec) -> tuple[float, np.ndarray]:
    """(seconds, frame indices decoded) to probe, plan and decode `path` as
    `vidlake label --sample SAMPLE` does."""
    start = time.perf_counter()
    (ref,) = list_corpus(str(path))
    info = probe_video(ref, keyframes=sample.needs_keyframes)
    spec = AnalysisSpec("frame_labels", sample=sample, size=SETTINGS.size)
    units = list(plan_video(info, {"frames": spec}, 64, "bench"))
    decoded = decode_units(SETTINGS, units)
    seconds = time.perf_counter() - start
    if not all(d.ok for d in decoded):
        raise RuntimeError(f"{path}: {[d.error for d in decoded if not d.ok]}")
    return seconds, np.concatenate([d.frame_indices for d in decoded])


def keyframes_vs_exact(work: Path) -> dict[str, dict[str, float]]:
    """{"<video> <sample>": {seconds, frames, frames_per_s, pictures_per_frame}}."""
    results: dict[str, dict[str, float]] = {}
    for video, path in prepare(work).items():
        (ref,) = list_corpus(str(path))
        keyframes = probe_video(ref, keyframes=True).keyframes
        assert keyframes is not None
        for text in SAMPLES:
            sample = SampleSpec.parse(text)
            best, frames = min((label_one(path, sample) for _ in range(REPEATS)),
                               key=lambda r: r[0])
            pictures = (len(frames) if sample.needs_keyframes
                        else decoded_pictures(frames, keyframes))
            results[f"{video} {text}"] = {
                "seconds": round(best, 3), "frames": len(frames),
                "frames_per_s": round(len(frames) / best, 1),
                "pictures_per_frame": round(pictures / len(frames), 1)}
            print(f"{video:<15} {text:<11} {best:7.3f} s {len(frames):4d} frames "
                  f"{len(frames) / best:8.1f} frames/s {pictures / len(frames):6.1f} "
                  "pictures/frame", flush=True)
    return results
