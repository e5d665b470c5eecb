"""Benchmarks, measured side by side on this machine in one run.

Usage:
    python -m jobs.benchmark pipeline-vs-loop [--videos 600] [--work-dir .cache/bench]
        [--address auto]
    python -m jobs.benchmark multi-analysis [--videos 40] [--work-dir .cache/bench]
    python -m jobs.benchmark keyframes [--work-dir .cache/bench]
    python -m jobs.benchmark decode [--videos 200] [--work-dir .cache/bench]
    python -m jobs.benchmark shots [--videos 12] [--work-dir .cache/bench]
    python -m jobs.benchmark bottleneck [--videos N] [--work-dir .cache/bench]
    python -m jobs.benchmark tiny [--videos 5000] [--work-dir .cache/bench]
    python -m jobs.benchmark scale [--videos 10000,100000,1000000] [--s3]
        [--source folder|manifest] [--videos-per-run 10000] [--idle-runs 0]
        [--checkpoint-every 100]

pipeline-vs-loop: a cached corpus of short 320x240 H.264 clips; `vidlake label
--sample uniform:8 --size 112` with mobilenet_v3_small (both decode shapes)
against a plain single-process loop (decord + the same model, no Ray). Each
contender runs in its own fresh process. The last line is JSON:
pipeline_fps, naive_fps, ratio (end-to-end wall, Ray start-up included),
steady_ratio (start-up and model loading left out), decode_only_fps,
model_only_fps, in_actor_fps, in_actor_ratio, and the same figures for the
same stages run on Ray Data's streaming executor (ray_data_*), the engine
vidlake's own scheduler has to beat. With --address, the Ray contenders join
that cluster instead of starting their own (a warm `ray start --head`: what
repeated small jobs pay, docs/operations.md); the JSON then names it.

multi-analysis: a cached corpus of 8 s 320x240 H.264 videos cut from 2-4
shots; frame labels (mobilenet_v3_small at fps:1), clip labels (r3d_18, one
8x112x112 clip per video) and shots in one `vidlake label` run, then the same
three as separate runs, each a fresh process. The last line is JSON:
combined_s, separate_s, ratio (combined / separate), and the parts' times.

keyframes: exact against keyframe sampling on long- and short-GOP 720p videos
(jobs/keyframe_benchmark.py). The last line is JSON: per video and sample,
seconds, frames, frames_per_s and pictures_per_frame.

decode: decord 0.6 against decord2 against PyAV, one thread each, on cached
short 320x240 H.264 clips and three long-GOP 720p files: sparse (uniform:8,
resized to 112x112 on decode) and full (every frame at its own size). Each
decoder runs in a fresh process; the two decords in side venvs made on first
use under .cache/bench-venvs (jobs/decode_benchmark.py). Best of 3 runs each, as a
markdown table of frames/s (ratio to decord 0.6); the last line is JSON.

shots: shot detection on a cached generated edit corpus with known hard cuts,
dissolves, fades, flashes and fast pans: vidlake's content and adaptive
methods and PySceneDetect's (the anchor), each scored by one protocol
(precision, recall, F1 for hard cuts at +-1 frame and gradual transitions by
overlap) with its frames/s (jobs/shot_benchmark.py). A markdown table, then
JSON.

bottleneck: a decode-bound and a model-bound `vidlake label` run, each
verdict read back from its `runs` row next to what the scenario was built to
be (jobs/bottleneck_benchmark.py).

tiny: 5,000 one-second 320x240 clips, one frame each: `vidlake label` end to
end against a plain loop, each a fresh process (jobs/tiny_benchmark.py). The
last line is JSON: loop_s, vidlake_s, ratio (loop_s / vidlake_s).

finetune: `vidlake train --init-weights` of a model pretrained here on the
demo's motion directions against training from scratch, on a related task
with new labels (horizontal or vertical motion) from --videos videos per
class: validation top-1 per epoch and the epochs each needs to reach 0.9
(jobs/finetune_benchmark.py). The last line is JSON.

scale: synthesised lakes of each --videos count (a comma list; default
10000,100000), written through the real commit path with no decoding, on
local disk or, with --s3, on a SeaweedFS server it starts; `relabel
--dry-run`, a no-op `relabel`, a `vidlake query` count over
latest_frame_labels, `compact` and `check` each run in a fresh process: wall
time, peak RSS and storage requests per size, then the growth exponent of
each (jobs/scale_benchmark.py). Markdown tables, then JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.cli.parser import OneLineParser
from pipeline.values import integer

MODEL = "mobilenet_v3_small"
SIZE = 112
FRAMES_PER_VIDEO = 8
_RESULT = "BENCHMARK-RESULT "  # marks a part's result among whatever else it prints
SCALE_SIZES = "10000,100000"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m jobs.benchmark", description=__doc__,
                           formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("scenario",
                        choices=["pipeline-vs-loop", "multi-analysis", "keyframes", "decode",
                                 "shots", "bottleneck", "scale", "tiny", "finetune", "_part"])
    parser.add_argument("part", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--videos", metavar="N",
                        help="corpus size (default 600; multi-analysis 40; decode 200; tiny 5000; "
                             "shots 12; bottleneck 48 and 16; finetune 16 training videos "
                             "per class); scale: a comma list of lake "
                             f"sizes (default {SCALE_SIZES})")
    parser.add_argument("--work-dir", default=".cache/bench", help="corpus, weights, lakes")
    parser.add_argument("--address", metavar="ADDR",
                        help="pipeline-vs-loop: the Ray contenders join this running cluster "
                             "(`auto`: the one `ray start --head` left on this machine) "
                             "instead of starting their own")
    parser.add_argument("--s3", action="store_true",
                        help="scale: lakes and SOURCE on a SeaweedFS S3 server it starts")
    parser.add_argument("--source", choices=["folder", "manifest"], default="folder",
                        help="scale: SOURCE is a folder (S3 prefix) of placeholder videos, "
                             "or a CSV manifest naming them (default folder)")
    parser.add_argument("--videos-per-run", type=integer(1, 10**7), default=10_000,
                        help="scale: videos each synthesised run processed (default 10000)")
    parser.add_argument("--idle-runs", type=integer(0, 10**6), default=0,
                        help="scale: runs with nothing to do added to each lake (default 0)")
    parser.add_argument("--checkpoint-every", type=integer(0, 10**6), default=100,
                        help="scale: the synthesised runs checkpoint the commit log every N "
                             "commits, as vidlake runs do (default 100; 0: never, as lakes "
                             "written before checkpoints)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse; `--videos` becomes an int (0: the scenario's default), and for
    `scale` a list of sizes in `sizes`. A bad value exits 2 with one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.address and args.scenario not in ("pipeline-vs-loop", "_part"):
        parser.error("argument --address: only pipeline-vs-loop joins a cluster")
    text = args.videos
    args.sizes = []
    if args.scenario == "scale":
        from jobs.scale_benchmark import parse_sizes

        try:
            args.sizes = parse_sizes(text or SCALE_SIZES)
        except ValueError as exc:
            parser.error(f"argument --videos: {exc}")
        args.videos = 0
        return args
    try:
        args.videos = int(text) if text is not None else 0
    except ValueError:
        hint = " (a comma list is for the scale scenario only)" if "," in text else ""
        parser.error(f"argument --videos: invalid int value: {text!r}{hint}")
    return args


def _paths(work: Path, count: int) -> list[Path]:
    return sorted((work / "corpus").glob("clip_*.mp4"))[:count]


def _indices(n_frames: int) -> list[int]:
    from pipeline.config import SampleSpec
    from pipeline.plan.sampling import sample_indices

    return sample_indices(SampleSpec("uniform", FRAMES_PER_VIDEO), n_frames, 25.0).tolist()


def load_model(weights: Path) -> Any:
    import torch
    import torchvision

    model = torchvision.models.get_model(MODEL, weights=None, num_classes=1000)
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval()


def part_loop(work: Path, count: int) -> dict[str, float]:
    """The straightforward loop: open, decode 8 frames, classify, next video."""
    import decord
    import torch

    t0 = time.monotonic()
    model = load_model(work / "weights.pt")
    t1 = time.monotonic()
    frames = 0
    with torch.inference_mode():
        for path in _paths(work, count):
            reader = decord.VideoReader(str(path), width=SIZE, height=SIZE, num_threads=1)
            batch = reader.get_batch(_indices(len(reader))).asnumpy()
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255)
            model(x).softmax(1).topk(5)
            frames += len(batch)
    t2 = time.monotonic()
    return {"frames": frames, "wall_s": t2 - t0, "steady_fps": frames / (t2 - t1)}


def part_decode(work: Path, count: int) -> dict[str, float]:
    import decord

    paths = _paths(work, count)[:150]
    t0 = time.monotonic()
    frames = 0
    for path in paths:
        reader = decord.VideoReader(str(path), width=SIZE, height=SIZE, num_threads=1)
        frames += len(reader.get_batch(_indices(len(reader))).asnumpy())
    return {"fps": frames / (time.monotonic() - t0)}


def part_model(work: Path) -> dict[str, float]:
    import torch

    model = load_model(work / "weights.pt").to(memory_format=torch.channels_last)
    x = torch.rand(64, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        t0 = time.monotonic()
        for _ in range(10):
            model(x)
    return {"fps": 640 / (time.monotonic() - t0)}


def part_pipeline(work: Path, decode: str, address: str | None = None) -> dict[str, float]:
    """`vidlake label` end to end in this fresh process (Ray start-up included,
    or joining `address`)."""
    import shutil

    from jobs.label import parse_args as label_args
    from jobs.logging_setup import configure
    from pipeline.cli.label_options import label_config_from_args
    from pipeline.runner.label_run import run_label

    configure()
    lake = work / f"lake-{decode}"
    shutil.rmtree(lake, ignore_errors=True)
    t0 = time.monotonic()
    args = label_args([str(work / "corpus"), "--output", str(lake), "--model", MODEL,
                       "--weights", str(work / "weights.pt"), "--sample", "uniform:8",
                       "--size", str(SIZE), "--decode", decode,
                       *(["--address", address] if address else [])])
    summary = run_label(label_config_from_args(args))
    wall = time.monotonic() - t0
    return {"frames": summary.counts.frames, "wall_s": wall,
            "steady_fps": summary.steady_frames_per_s}


def part_ray_data(work: Path, address: str | None = None) -> dict[str, float]:
    """The same stages on Ray Data's streaming executor (decode map_batches into
    an actor map_batches), to compare with vidlake's own Ray scheduler."""
    import numpy as np
    import ray

    from jobs.label import parse_args as label_args
    from pipeline.analyses.resolve import resolve_analyses
    from pipeline.cli.label_options import label_config_from_args
    from pipeline.config import DEFAULT_MAX_FRAME_PIXELS
    from pipeline.corpus import list_corpus
    from pipeline.decode.unit_decoder import decode_units
    from pipeline.observe.work_times import WorkTimes
    from pipeline.plan.planner import analysis_key, plan_video
    from pipeline.runner.batch_result import model_stage
    from pipeline.runner.engine_start import build_analyses, decode_settings
    from pipeline.runner.ray_session import start_ray
    from pipeline.runner.ray_tasks import probe_task

    config = label_config_from_args(label_args([
        str(work / "corpus"), "--output", str(work / "lake-ray-data"), "--weights",
        str(work / "weights.pt"), "--sample", "uniform:8", "--size", str(SIZE)]))
    start_ray(address)
    refs = list_corpus(config.source)
    chunks = [refs[i : i + 16] for i in range(0, len(refs), 16)]
    infos = [i for part, _ in ray.get([probe_task.remote(c, None, DEFAULT_MAX_FRAME_PIXELS,
                                                         False) for c in chunks]) for i in part]
    resolved = resolve_analyses(config)
    key = analysis_key(resolved[0].spec, resolved[0].version, "frame_labels")
    specs = {r.name: r.spec for r in resolved}
    units = [u for info in infos for u in plan_video(info, specs, 128, key)]
    settings = decode_settings(config, resolved)

    def decode(batch: dict[str, Any]) -> dict[str, Any]:
        out = np.empty(len(batch["units"]), dtype=object)
        for i, group in enumerate(batch["units"]):
            out[i] = decode_units(settings, list(group))
        return {"decoded": out}

    class Infer:
        def __init__(self) -> None:
            self.analyses = build_analyses(config, resolved)
            for analysis in self.analyses:
                analysis.setup()

        def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
            decoded = [d for part in batch["decoded"] for d in part]
            model_stage(self.analyses, decoded, WorkTimes())
            return {"frames": np.array([sum(len(d.frames) for d in decoded)])}

    t_first = None
    frames = 0
    groups = [units[i : i + 4] for i in range(0, len(units), 4)]  # 4 videos' frames a task
    dataset = (ray.data.from_items([{"units": g} for g in groups])
               .map_batches(decode, batch_size=1, num_cpus=1)
               .map_batches(Infer, batch_size=2, concurrency=1, num_cpus=0.01))
    for batch in dataset.iter_batches(batch_size=None):
        if t_first is None:
            t_first, first = time.monotonic(), int(batch["frames"].sum())
        frames += int(batch["frames"].sum())
    steady = (frames - first) / (time.monotonic() - t_first) if t_first else 0.0
    return {"frames": frames, "steady_fps": steady}


def _run_part(work: Path, count: int, *part: str, address: str | None = None,
              ) -> dict[str, float]:
    """Run one contender in a fresh process; `process_s` is its whole wall time,
    interpreter start, imports, Ray start-up (or joining `address`) and
    shutdown included."""
    cmd = [sys.executable, "-m", "jobs.benchmark", "_part", ":".join(part),
           "--videos", str(count), "--work-dir", str(work),
           *(["--address", address] if address else [])]
    t0 = time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    line = next(x for x in reversed(out.splitlines()) if x.startswith(_RESULT))
    result: dict[str, float] = json.loads(line[len(_RESULT):])
    result["process_s"] = time.monotonic() - t0
    return result


def prepare(work: Path, count: int) -> None:
    from pipeline.synthetic.corpus_builder import write_benchmark_corpus

    print(f"preparing {count} clips in {work / 'corpus'} (cached)...", flush=True)
    write_benchmark_corpus(work / "corpus", count=count)
    prepare_weights(work)


def prepare_weights(work: Path) -> None:
    """Untrained MODEL weights at WORK/weights.pt (seeded; made once)."""
    import torch
    import torchvision

    if not (work / "weights.pt").exists():
        torch.manual_seed(0)
        model = torchvision.models.get_model(MODEL, weights=None, num_classes=1000)
        torch.save(model.state_dict(), work / "weights.pt")


def pipeline_vs_loop(work: Path, count: int, address: str | None = None,
                     ) -> dict[str, float | str | None]:
    prepare(work, count)
    decode = _run_part(work, count, "decode")["fps"]
    model = _run_part(work, count, "model")["fps"]
    print(f"decode only: {decode:.1f} frames/s (1 process); model only: {model:.1f} frames/s")
    results = {}
    for name, part in [("plain loop", ("loop",)),
                       ("vidlake --decode workers", ("pipeline", "workers")),
                       ("vidlake --decode in-actor", ("pipeline", "in-actor")),
                       ("same stages on Ray Data", ("ray-data",))]:
        results[name] = r = _run_part(work, count, *part, address=address)
        print(f"{name}: {r['frames']:.0f} frames, process {r['process_s']:.1f}s, "
              f"steady {r['steady_fps']:.1f} frames/s", flush=True)
    loop, workers, in_actor, ray_data = results.values()
    naive_fps = loop["frames"] / loop["process_s"]
    pipeline_fps = workers["frames"] / workers["process_s"]
    in_actor_fps = in_actor["frames"] / in_actor["process_s"]
    return {
        "address": address,
        "pipeline_fps": round(pipeline_fps, 1), "naive_fps": round(naive_fps, 1),
        "ratio": round(pipeline_fps / naive_fps, 3),
        "steady_ratio": round(workers["steady_fps"] / loop["steady_fps"], 3),
        "decode_only_fps": round(decode, 1), "model_only_fps": round(model, 1),
        "in_actor_fps": round(in_actor_fps, 1),
        "in_actor_ratio": round(in_actor_fps / naive_fps, 3),
        "in_actor_steady_ratio": round(in_actor["steady_fps"] / loop["steady_fps"], 3),
        "ray_data_fps": round(ray_data["frames"] / ray_data["process_s"], 1),
        "ray_data_ratio": round(ray_data["frames"] / ray_data["process_s"] / naive_fps, 3),
        "ray_data_steady_ratio": round(ray_data["steady_fps"] / loop["steady_fps"], 3),
    }


def run(args: argparse.Namespace) -> int:
    work = Path(args.work_dir)
    if args.scenario == "multi-analysis":
        from jobs.multi_analysis_benchmark import multi_analysis

        print(json.dumps(multi_analysis(work, args.videos or 40)))
        return 0
    if args.scenario == "keyframes":
        from jobs.keyframe_benchmark import keyframes_vs_exact

        print(json.dumps(keyframes_vs_exact(work)))
        return 0
    if args.scenario == "shots":
        from jobs.shot_benchmark import shot_benchmark

        print(json.dumps(shot_benchmark(work, args.videos or 12)))
        return 0
    if args.scenario == "bottleneck":
        from jobs.bottleneck_benchmark import bottleneck_benchmark

        print(json.dumps(bottleneck_benchmark(work, args.videos), indent=1))
        return 0
    if args.scenario == "finetune":
        from jobs.finetune_benchmark import finetune_benchmark

        print(json.dumps(finetune_benchmark(work, args.videos or 16)))
        return 0
    if args.scenario == "tiny":
        from jobs.tiny_benchmark import tiny_benchmark

        print(json.dumps(tiny_benchmark(work, args.videos or 5000)))
        return 0
    if args.scenario == "scale":
        from jobs.scale_benchmark import scale_benchmark

        print(json.dumps(scale_benchmark(args.sizes, work, s3=args.s3, source_kind=args.source,
                                         videos_per_run=args.videos_per_run,
                                         idle_runs=args.idle_runs,
                                         checkpoint_every=args.checkpoint_every)))
        return 0
    if args.scenario == "decode":
        from jobs.decode_benchmark import decode_benchmark

        print(json.dumps(decode_benchmark(work, args.videos or 200)))
        return 0
    args.videos = args.videos or 600
    if args.scenario == "_part":
        name, _, option = (args.part or "").partition(":")
        parts = {"loop": lambda: part_loop(work, args.videos),
                 "decode": lambda: part_decode(work, args.videos),
                 "model": lambda: part_model(work),
                 "pipeline": lambda: part_pipeline(work, option, args.address),
                 "ray-data": lambda: part_ray_data(work, args.address)}
        print(_RESULT + json.dumps(parts[name]()))
        return 0
    print(json.dumps(pipeline_vs_loop(work, args.videos, args.address)))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
