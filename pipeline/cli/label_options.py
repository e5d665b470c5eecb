"""`vidlake label` flags -> LabelConfig, validated before any work."""

from __future__ import annotations

import argparse
import dataclasses

from pipeline.cli.analysis_options import (
    add_analysis_arguments,
    analyses_from_args,
    run_options_from_args,
)
from pipeline.cli.parser import add_lock_wait, add_storage_option
from pipeline.config import (
    DEFAULT_MAX_FRAME_PIXELS,
    ExecutionSpec,
    FrameSize,
    LabelConfig,
    ModelSpec,
    RunPolicy,
    SampleSpec,
)
from pipeline.errors import ConfigError
from pipeline.storage_options import StorageOptions
from pipeline.values import fraction, integer, positive_seconds


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of `vidlake label`, documented."""
    parser.add_argument("source", metavar="SOURCE",
                        help="videos: a directory, file:// URL, s3://bucket/prefix, or a "
                             "manifest (.parquet/.csv with a 'uri' column)")
    parser.add_argument("--output", "-o", required=True, metavar="LAKE",
                        help="lake root (local folder or s3://bucket/prefix); tables go to "
                             "LAKE/<table>/")
    parser.add_argument("--model", default="auto",
                        help="frame CNN (resnet18, resnet50, mobilenet_v3_small, "
                             "mobilenet_v3_large, efficientnet_b0), clip model (r3d_18, mc3_18, "
                             "r2plus1d_18, s3d, mvit_v2_s, small_3d, cnn_gru, cnn_lstm) or "
                             "detector (fasterrcnn_mobilenet_v3_large_fpn, ...); auto (default): "
                             "the checkpoint's architecture, else mobilenet_v3_small")
    parser.add_argument("--weights", metavar="URI",
                        help="weights file (local or s3): a state_dict or a vidlake checkpoint; "
                             "nothing is downloaded from a hub. Without it the model is "
                             "untrained (speed tests only)")
    parser.add_argument("--labels", metavar="URI",
                        help="label names (one per line, or a JSON list) for a plain state_dict")
    parser.add_argument("--sample",
                        help="frames to analyse: uniform:N | fps:F | every:K | all | keyframes; "
                             "a trailing ~ (uniform:8~, fps:1~) snaps each frame to the "
                             "keyframe at or before it, decoded alone (default uniform:8; "
                             "shots read every frame)")
    parser.add_argument("--size",
                        help="analysis size: N (NxN) or WxH, resized on decode (default: 224 "
                             "for frame models, the documented size for clip models)")
    parser.add_argument("--top-k", type=integer(1, 10_000),
                        help="labels kept per frame or clip (default 5)")
    parser.add_argument("--embeddings", action="store_true",
                        help="also write penultimate-layer features to frame_embeddings")
    parser.add_argument("--decode", choices=["workers", "in-actor"], default="workers",
                        help="workers: CPU decode tasks feed inference actors (default); "
                             "in-actor: each inference actor decodes its own units in a "
                             "prefetching thread (the shape for --decode-device gpu)")
    parser.add_argument("--decode-device", choices=["cpu", "gpu"], default="cpu",
                        help="cpu: decord, PyAV where decord is not exact (default); gpu: NVDEC "
                             "through PyNvVideoCodec (pip install 'vidlake[gpu]'; needs a CUDA "
                             "device; with the ray engine, --decode in-actor) for each video "
                             "NVDEC takes, CPU for the rest (videos.decoder says which)")
    parser.add_argument("--decode-workers", type=integer(0, 4096), default=0,
                        help="concurrent decode tasks (default: one per CPU)")
    parser.add_argument("--inference-actors", type=integer(0, 4096), default=0,
                        help="model actors (default: one per GPU, else one)")
    parser.add_argument("--inference-threads", type=integer(1, 256), default=1,
                        help="torch threads of a CPU inference actor (default 1)")
    parser.add_argument("--batch-frames", type=integer(1, 1 << 20), default=64,
                        help="frames per inference call, batched across units (default 64)")
    parser.add_argument("--buffer-mb", type=integer(1, 1 << 20), default=512,
                        help="decoded frames waiting for a model, at most, in MiB (default 512)")
    parser.add_argument("--max-frames-per-unit", type=integer(1, 100_000), default=128,
                        help="most sampled frames in one work unit; bounds memory per task "
                             "(default 128; fewer when they would hold more than 512 MiB "
                             "decoded, e.g. shots at a 4K video's own size)")
    parser.add_argument("--decoder-threads", type=integer(0, 64), default=1,
                        help="decord threads per decode worker, pinned (default 1; 0: "
                             "decord's auto, usually slower)")
    parser.add_argument("--max-frame-pixels", type=frame_pixels, default=DEFAULT_MAX_FRAME_PIXELS,
                        metavar="N|WxH",
                        help="a video whose pictures hold more pixels than this is recorded "
                             "as an error, before any frame is decoded (default 8192x8192)")
    parser.add_argument("--unit-timeout", type=positive_seconds, default=120.0,
                        metavar="SECONDS",
                        help="a unit still decoding after this is killed and recorded as an "
                             "error (default 120)")
    parser.add_argument("--inference-timeout", type=positive_seconds, default=600.0,
                        metavar="SECONDS",
                        help="a model call still running after this (from when its actor "
                             "starts it) is stopped: the actor is replaced and the call's "
                             "units are recorded as errors (default 600; Ray engine)")
    parser.add_argument("--fault-tolerance", type=fraction, default=0.0,
                        help="share of frames decord may recover silently before a unit "
                             "fails as corrupt (default 0: none)")
    add_storage_option(parser)
    parser.add_argument("--address", help="Ray cluster to join: HOST:PORT, or `auto` for the "
                                          "one `ray start --head` runs on this machine (small "
                                          "jobs then skip Ray's start-up); default: "
                                          "RAY_ADDRESS, else a local Ray started in this "
                                          "process")
    add_lock_wait(parser, "wait this long for another run's lock on the lake (default 0: "
                           "exit 3 at once)")
    parser.add_argument("--lock-ttl", type=positive_seconds, default=60.0, metavar="SECONDS",
                        help="a lock whose holder stopped heart-beating this long ago is "
                             "taken over (default 60)")
    parser.add_argument("--engine", choices=["ray", "sequential"], default="ray",
                        help="ray (default) or sequential: one process, no Ray (debugging)")
    add_analysis_arguments(parser)


def frame_pixels(text: str) -> int:
    """`--max-frame-pixels`: a pixel count, or WxH (their product)."""
    width, sep, height = text.lower().partition("x")
    side = integer(1, 1 << 20)
    return int(side(width) * side(height) if sep else integer(1, 1 << 40)(text))


# Flags only the Ray engine reads: argparse dest -> (flag, ExecutionSpec field).
RAY_ONLY = {"decode": ("--decode", "decode"),
            "decode_workers": ("--decode-workers", "decode_workers"),
            "inference_actors": ("--inference-actors", "inference_actors"),
            "buffer_mb": ("--buffer-mb", "buffer_mb"),
            "unit_timeout": ("--unit-timeout", "unit_timeout_s"),
            "inference_timeout": ("--inference-timeout", "inference_timeout_s"),
            "address": ("--address", "address")}


def refuse_ray_flags(args: argparse.Namespace) -> None:
    """ConfigError for a Ray engine flag given to `--engine sequential` (it would
    be ignored)."""
    if args.engine != "sequential":
        return
    defaults = ExecutionSpec()
    for dest, (flag, field) in RAY_ONLY.items():
        if getattr(args, dest) != getattr(defaults, field):
            raise ConfigError(f"{flag} applies to the ray engine; this run has --engine "
                              "sequential")


def label_config_from_args(args: argparse.Namespace,
                           policy: RunPolicy | None = None) -> LabelConfig:
    """Resolve and validate; raises ConfigError with a fix-it message. `policy`
    (relabel's) replaces label's: failures final, no idle runs recorded."""
    refuse_ray_flags(args)
    if args.decode_device == "gpu" and args.fault_tolerance > 0:
        raise ConfigError("--fault-tolerance applies to decord; NVDEC reports no recovered "
                          "frames, so it cannot be honoured with --decode-device gpu")
    execution = ExecutionSpec(
        engine=args.engine, decode=args.decode, decode_device=args.decode_device,
        decode_workers=args.decode_workers,
        inference_actors=args.inference_actors, inference_threads=args.inference_threads,
        batch_frames=args.batch_frames, buffer_mb=args.buffer_mb,
        max_frames_per_unit=args.max_frames_per_unit,
        decoder_threads=args.decoder_threads, unit_timeout_s=args.unit_timeout,
        inference_timeout_s=args.inference_timeout,
        max_frame_pixels=args.max_frame_pixels, address=args.address)
    model = ModelSpec(name=args.model, weights_uri=args.weights, labels_uri=args.labels,
                      top_k=args.top_k or 5, embeddings=args.embeddings)
    return LabelConfig(source=args.source, output=args.output, model=model,
                       sample=SampleSpec.parse(args.sample) if args.sample else None,
                       size=FrameSize.parse(args.size) if args.size else None,
                       execution=execution, storage=StorageOptions.parse(args.storage_option),
                       fault_tolerance=args.fault_tolerance,
                       analyses=analyses_from_args(args, model, model_flags(args)),
                       run_options=run_options_from_args(args),
                       policy=dataclasses.replace(policy or RunPolicy(),
                                                  lock_wait_s=args.lock_wait,
                                                  lock_ttl_s=args.lock_ttl))


def model_flags(args: argparse.Namespace) -> dict[str, str]:
    """Shared-option name -> flag, for each model flag the user gave."""
    given = {"model": args.model != "auto", "weights": bool(args.weights),
             "labels": bool(args.labels), "top_k": args.top_k is not None,
             "embeddings": bool(args.embeddings)}
    return {name: "--" + name.replace("_", "-") for name, on in given.items() if on}
