"""NVDEC against the CPU decoders, on a GPU machine: speed, exactness, routing.

Usage (the project installed with the gpu extra; this installs nothing):
    pip install -e '.[gpu]'
    python -m jobs.nvdec_check [--work-dir nvdec-check] [--frames 120] [--json OUT.json]
        [--skip-label]

It writes a few videos (h264, h264 with B-frames, hevc closed and open GOP,
10-bit hevc, av1, 10-bit and 4:4:4 h264, an h264 wider than NVDEC's H.264
limit, an mkv), then for each one prints:

- the routing verdict `--decode-device gpu` gives it (None: NVDEC);
- frames/s of the CPU path (what `vidlake label` does without the flag) and
  of NVDEC forced on it (even where the verdict sends it to CPU: that is how
  the conservative rules can be widened), sparse and sequential reads, at
  the analysis size (224x224);
- at the video's own size (no resizing on either side): the largest and mean
  absolute pixel difference against the CPU frames, how many NVDEC frames
  are closest to the CPU frame of the same index, and the largest timestamp
  difference.

Then it runs `vidlake label --decode-device gpu` on the folder (sequential
engine, then Ray with --decode in-actor) and prints videos.decoder of each.
Exit code 0 when every step ran (whatever it measured), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.cli.parser import OneLineParser
from pipeline.config import FrameSize

# name -> (writer codec, width, height): what each case is for in the docstring
CASES = {
    "h264.mp4": ("h264", 1280, 720),
    "h264_bframes.mp4": ("h264_bframes", 1280, 720),
    "hevc_closed_gop.mp4": ("hevc_closed_gop", 1280, 720),
    "hevc_open_gop.mp4": ("hevc", 1280, 720),
    "hevc10_closed_gop.mp4": ("hevc10_closed_gop", 1280, 720),
    "av1.mp4": ("av1", 640, 360),
    "h264_10bit.mp4": ("h264_10bit", 640, 360),
    "h264_444.mp4": ("h264_444", 640, 360),
    "h264_wide.mp4": ("h264", 4608, 128),  # wider than NVDEC's 4096 for H.264
    "h264.mkv": ("h264", 640, 360),
}
ANALYSIS_SIZE = FrameSize(224, 224)


def moving_texture(n: int, width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Noise sliding 3 px a frame plus a bar whose height counts the frame:
    every frame differs from its neighbours, so the closest frame names it."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (height, width + 3 * n, 3), np.uint8)
    for i in range(n):
        frame = texture[:, 3 * i : 3 * i + width].copy()
        frame[: min(height, 2 + (i * height) // n), :16] = 255
        yield frame


def write_cases(folder: Path, frames: int) -> list[Path]:
    from pipeline.synthetic.video_writer import write_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (codec, width, height) in CASES.items():
        path = folder / name
        if not path.exists():
            write_video(path, moving_texture(frames, width, height), codec=codec, gop=24)
        paths.append(path)
    return paths


def _unit(path: Path, indices: np.ndarray, size: FrameSize) -> Any:
    from pipeline.corpus.listing import list_corpus
    from pipeline.plan.work_unit import WorkUnit

    (ref,) = list_corpus(str(path))
    return WorkUnit(unit_id=f"check-{path.name}", video=ref, unit_index=0,
                    frame_indices=tuple(int(i) for i in indices), fps=25.0, size=size)


def cpu_decode(path: Path, indices: np.ndarray, size: FrameSize) -> tuple[Any, float]:
    """The CPU path (decord, PyAV where decord is not exact) and its seconds."""
    from pipeline.decode.unit_decoder import DecodeSettings, decode_frames

    settings = DecodeSettings(size=size)
    start = time.perf_counter()
    decoded = decode_frames(settings, _unit(path, indices, size), str(path))
    return decoded, time.perf_counter() - start


def nvdec_decode(path: Path, indices: np.ndarray, size: FrameSize,
                 ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, int] | str, float]:
    """NVDEC forced on the file (no routing), or why it failed; and its seconds."""
    from pipeline.decode.nvdec_decoder import NvdecFailed, decode_with_nvdec
    from pipeline.decode.nvdec_support import stream_facts

    facts = stream_facts(str(path))
    if facts is None:
        return "no stream facts", 0.0
    start = time.perf_counter()
    try:
        result = decode_with_nvdec(str(path), indices, size, facts, max_pixels=1 << 40)
    except NvdecFailed as exc:
        return f"NvdecFailed: {exc}", time.perf_counter() - start
    return result, time.perf_counter() - start


def compare(path: Path, frames: int) -> dict[str, Any]:
    """One video: verdict, speeds and agreement (see the module docstring)."""
    from pipeline.decode.nvdec_decoder import nvdec_limits
    from pipeline.decode.nvdec_support import stream_facts, why_not_nvdec

    facts = stream_facts(str(path))
    row: dict[str, Any] = {"file": path.name,
                           "verdict": why_not_nvdec(facts, lambda: nvdec_limits(str(path)))}
    sparse = np.unique(np.linspace(0, frames - 1, 12).round().astype(np.int64))
    every = np.arange(frames, dtype=np.int64)
    for label, indices in (("sparse", sparse), ("sequential", every)):
        cpu, cpu_s = cpu_decode(path, indices, ANALYSIS_SIZE)
        gpu, gpu_s = nvdec_decode(path, indices, ANALYSIS_SIZE)
        row[f"cpu_{label}_fps"] = round(len(cpu.frames) / cpu_s, 1) if cpu.ok else cpu.error
        row["cpu_decoder"] = cpu.decoder
        row[f"nvdec_{label}_fps"] = (round(len(gpu[0]) / gpu_s, 1) if not isinstance(gpu, str)
                                     else gpu)
    if facts is not None:
        native = FrameSize(*((facts.height, facts.width) if facts.rotation in (90, 270)
                             else (facts.width, facts.height)))
        row.update(agreement(path, every, sparse, native))
    return row


def agreement(path: Path, every: np.ndarray, sparse: np.ndarray,
              size: FrameSize) -> dict[str, Any]:
    """NVDEC's sparse frames at the video's own size against every CPU frame."""
    cpu, _ = cpu_decode(path, every, size)
    gpu, _ = nvdec_decode(path, sparse, size)
    if isinstance(gpu, str) or not cpu.ok:
        return {"agreement": gpu if isinstance(gpu, str) else f"CPU: {cpu.error}"}
    frames, kept, stamps, _ = gpu
    reference = cpu.frames.astype(np.int16)
    diffs = [np.abs(reference[i] - f.astype(np.int16)) for i, f in zip(kept, frames, strict=True)]
    closest = [int(np.argmin(np.abs(reference - f.astype(np.int16)).mean(axis=(1, 2, 3))))
               for f in frames]
    same = sum(c == int(k) for c, k in zip(closest, kept, strict=True))
    return {"max_abs_diff": int(max(int(d.max()) for d in diffs)),
            "mean_abs_diff": round(float(np.mean([d.mean() for d in diffs])), 3),
            "closest_is_same_index": f"{same} of {len(kept)}",
            "max_timestamp_diff_s": float(np.max(np.abs(stamps - cpu.timestamps_s[kept])))}


def label_run(folder: Path, lake: Path, extra: list[str]) -> dict[str, Any]:
    """`vidlake label --decode-device gpu` on `folder`; videos.decoder per file."""
    command = [sys.executable, "-m", "jobs.cli", "label", str(folder), "--output", str(lake),
               "--decode-device", "gpu", "--model", "mobilenet_v3_small", "--sample",
               "uniform:8", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=420)
    result: dict[str, Any] = {"flags": " ".join(extra), "exit": done.returncode,
                              "stdout": done.stdout.strip()[-600:],
                              "stderr": done.stderr.strip()[-600:]}
    if done.returncode == 0:
        query = [sys.executable, "-m", "jobs.cli", "query", str(lake),
                 "SELECT regexp_extract(uri, '[^/]+$') AS file, status, decoder, error "
                 "FROM videos ORDER BY file"]
        result["videos"] = subprocess.run(query, capture_output=True, text=True,
                                          timeout=120).stdout.strip()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="python -m jobs.nvdec_check", description=__doc__,
                           formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--work-dir", default="nvdec-check", type=Path)
    parser.add_argument("--frames", type=int, default=120, help="frames per video")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-label", action="store_true", help="no vidlake label runs")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from pipeline.decode.gpu_routing import require_nvdec

    require_nvdec()  # one line and exit 2 (main) when this machine cannot
    folder = args.work_dir / "videos"
    paths = write_cases(folder, args.frames)
    nvdec_decode(paths[0], np.arange(4, dtype=np.int64), ANALYSIS_SIZE)  # session warm-up
    results: dict[str, Any] = {"videos": [], "label": []}
    for path in paths:
        row = compare(path, args.frames)
        print(json.dumps(row), flush=True)
        results["videos"].append(row)
    if not args.skip_label:
        for name, extra in (("sequential", ["--engine", "sequential"]),
                            ("in-actor", ["--decode", "in-actor"])):
            outcome = label_run(folder, args.work_dir / f"lake-{name}", extra)
            print(f"--- vidlake label --decode-device gpu {outcome['flags']}: exit "
                  f"{outcome['exit']}\n{outcome['stdout']}\n{outcome['stderr']}\n"
                  f"{outcome.get('videos', '')}", flush=True)
            results["label"].append(outcome)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(o["exit"] == 0 for o in results["label"]) else 1


def main(argv: list[str] | None = None) -> int:
    from pipeline.errors import ConfigError

    try:
        return run(parse_args(argv))
    except ConfigError as exc:
        print(f"nvdec_check: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
