"""Decode cost per CPU core at 360p, 720p and 1080p: the measured input of
docs/scaling.md's estimate for 10 million videos.

    python -m jobs.decode_per_core [--seconds 10] [--repeats 2]
        [--resolutions 360p,720p,1080p] [--work-dir .cache/decode-per-core]

Per resolution, two H.264 files of SECONDS at 30 fps, made once and cached:
libx264 `veryfast` (CABAC, deblocking, 3 B-frames) at YouTube's recommended
upload bitrate for the size, one keyframe every 250 frames (x264's default)
and every 30. The picture is a grainy texture panning 3 px a frame, so the
encoder spends the whole bitrate. Each file is then listed, probed, planned
(128-frame units) and decoded as one `vidlake label` decode worker does it
(decord, one thread, resized on decode to 224x224) for `uniform:8`, `fps:1`
and `all`. Cost is the process's CPU time (`time.process_time`: other work
on a shared machine does not count), best of REPEATS. Prints a markdown
table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.config import AnalysisSpec, FrameSize, SampleSpec
from pipeline.corpus.listing import list_corpus
from pipeline.decode.unit_decoder import DecodeSettings, decode_units
from pipeline.plan.planner import plan_video
from pipeline.plan.probe import probe_video

FPS = 30
# (width, height, kbit/s): YouTube's recommended SDR upload bitrates at 24-30 fps
# (https://support.google.com/youtube/answer/1722171)
RESOLUTIONS = {"360p": (640, 360, 1000), "720p": (1280, 720, 5000),
               "1080p": (1920, 1080, 8000)}
GOPS = (250, 30)
SAMPLES = ("uniform:8", "fps:1", "all")
SIZE = FrameSize(224, 224)
UNIT_FRAMES = 128  # ExecutionSpec.max_frames_per_unit's default


def _frames(n: int, width: int, height: int) -> Iterator[np.ndarray]:
    """A texture of blocks at three scales, tiled 2x2 and panned 3 px right and
    2 px down a frame; four copies with different grain take turns, so no
    frame repeats its predecessor's noise."""
    rng = np.random.default_rng(0)
    texture = np.zeros((height, width, 3), np.float32)
    for scale, weight in ((128, 0.5), (32, 0.3), (8, 0.2)):
        blocks = rng.random((height // scale + 1, width // scale + 1, 3), np.float32)
        texture += weight * blocks.repeat(scale, 0).repeat(scale, 1)[:height, :width]
    canvases = [np.tile(np.clip(texture * 200 + 28 + rng.normal(0, 6, texture.shape),
                                0, 255).astype(np.uint8), (2, 2, 1)) for _ in range(4)]
    for i in range(n):
        dy, dx = (2 * i) % height, (3 * i) % width
        yield np.ascontiguousarray(canvases[i % 4][dy:dy + height, dx:dx + width])


def encode(path: Path, seconds: int, width: int, height: int, kbps: int, gop: int) -> None:
    """One H.264 mp4 at `kbps`, a keyframe every `gop` frames (none in between)."""
    import av

    part = path.with_suffix(".part.mp4")
    with av.open(str(part), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={
            "preset": "veryfast", "threads": "1",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = kbps * 1000
        for frame in _frames(seconds * FPS, width, height):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    part.rename(path)


def cpu_seconds(path: Path, sample: SampleSpec) -> tuple[float, int]:
    """(CPU seconds, frames) to list, probe, plan and decode `path` as a run does."""
    start = time.process_time()
    (ref,) = list_corpus(str(path))
    info = probe_video(ref)
    spec = AnalysisSpec("frame_labels", sample=sample, size=SIZE)
    units = list(plan_video(info, {"frames": spec}, UNIT_FRAMES, "bench"))
    decoded = decode_units(DecodeSettings(size=SIZE, threads=1), units)
    spent = time.process_time() - start
    if not all(d.ok and d.decoder == "decord" for d in decoded):
        raise RuntimeError(f"{path}: {[(d.decoder, d.error) for d in decoded]}")
    return spent, sum(len(d.frame_indices) for d in decoded)


def measure(work: Path, seconds: int, repeats: int, names: list[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    work.mkdir(parents=True, exist_ok=True)
    for name in names:
        width, height, kbps = RESOLUTIONS[name]
        for gop in GOPS:
            path = work / f"{name}-{seconds}s-gop{gop}.mp4"
            if not path.exists():
                encode(path, seconds, width, height, kbps, gop)
            actual_kbps = path.stat().st_size * 8 / seconds / 1000
            cpu_seconds(path, SampleSpec.parse("uniform:8"))  # imports and caches, untimed
            for text in SAMPLES:
                spent, frames = min(cpu_seconds(path, SampleSpec.parse(text))
                                    for _ in range(repeats))
                rows.append({"resolution": name, "gop": gop, "kbps": round(actual_kbps),
                             "sample": text, "frames": frames, "cpu_s": round(spent, 4),
                             "frames_per_core_s": round(frames / spent, 1),
                             "video_s_per_core_s": round(seconds / spent, 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.decode_per_core",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each video")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--resolutions", default=",".join(RESOLUTIONS),
                        help="comma-separated, of " + ", ".join(RESOLUTIONS))
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/decode-per-core"))
    args = parser.parse_args(argv)
    names = args.resolutions.split(",")
    if unknown := [n for n in names if n not in RESOLUTIONS]:
        parser.error(f"unknown resolution {unknown[0]}")
    rows = measure(args.work_dir, args.seconds, max(1, args.repeats), names)
    print(f"{args.seconds} s H.264 at {FPS} fps, decord one thread, {SIZE} on decode; "
          "CPU seconds per video (list, probe, plan, decode)\n")
    print("| resolution | GOP | kbit/s | sample | frames | CPU s | frames per core-s "
          "| video-s per core-s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['resolution']} | {r['gop']} | {r['kbps']} | {r['sample']} | {r['frames']} "
              f"| {r['cpu_s']} | {r['frames_per_core_s']} | {r['video_s_per_core_s']} |")
    print(json.dumps({"seconds": args.seconds, "fps": FPS, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
