"""`--analysis NAME[:key=value,...]`, run-wide analysis flags and pipeline YAML
files -> AnalysisSpecs, validated before any work."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import yaml

from pipeline.config import (
    ANALYSIS_KINDS,
    AnalysisSpec,
    ClipSpec,
    DetectionSpec,
    FrameSize,
    ModelSpec,
    ResourceSpec,
    SampleSpec,
    ShotSpec,
)
from pipeline.errors import ConfigError
from pipeline.values import fraction, integer, number

MAX_CLIP_LEN = 1024  # frames in a clip, and between them
MAX_CLIPS_PER_VIDEO = 10_000
# option -> (section of AnalysisSpec or None for a top-level field, field, parser)
OPTIONS: dict[str, tuple[str | None, str, Callable[[Any], Any]]] = {
    "model": ("model", "name", str),
    "weights": ("model", "weights_uri", str),
    "labels": ("model", "labels_uri", str),
    "top_k": ("model", "top_k", integer(1, 10_000)),
    "sample": (None, "sample", lambda v: SampleSpec.parse(str(v))),
    "size": (None, "size", lambda v: FrameSize.parse(str(v))),
    "clip_len": ("clip", "clip_len", integer(1, MAX_CLIP_LEN)),
    "frame_step": ("clip", "frame_step", integer(1, MAX_CLIP_LEN)),
    "clips_per_video": ("clip", "clips_per_video", integer(1, MAX_CLIPS_PER_VIDEO)),
    "clip_stride": ("clip", "stride", integer(1, 10**9)),
    "score_threshold": ("detection", "score_threshold", fraction),
    "max_boxes": ("detection", "max_boxes", integer(1, 10_000)),
    "min_size": ("detection", "min_size", integer(8, 8192)),
    "threshold": ("shots", "threshold", fraction),
    "adaptive": ("shots", "adaptive", number(0, 1000)),
    "window": ("shots", "window", integer(1, 1000)),
    "min_score": ("shots", "min_score", fraction),
    "min_shot_len": ("shots", "min_shot_len", integer(1, 10**9)),
    "actors": ("resources", "actors", integer(1, 4096)),
    "num_gpus": ("resources", "num_gpus", number(0, 64)),
    "num_cpus": ("resources", "num_cpus", number(0, 1024)),
    "batch": ("resources", "batch", integer(1, 1 << 20)),
}
_SECTIONS = {"model": ModelSpec, "clip": ClipSpec, "detection": DetectionSpec, "shots": ShotSpec,
             "resources": ResourceSpec}


def with_options(spec: AnalysisSpec, options: dict[str, Any], where: str) -> AnalysisSpec:
    """`spec` with `options` (option name -> value) applied; ConfigError naming
    `where` for an unknown option or a bad value."""
    changes: dict[str | None, dict[str, Any]] = {}
    seen: set[str] = set()
    for key, raw in options.items():
        key = str(key).strip().replace("-", "_")
        if key in seen:
            raise ConfigError(f"{where}: option {key!r} is given twice")
        seen.add(key)
        if key not in OPTIONS:
            raise ConfigError(f"{where}: unknown option {key!r}; options are "
                              f"{', '.join(sorted(OPTIONS))}")
        section, name, parse = OPTIONS[key]
        try:
            changes.setdefault(section, {})[name] = parse(raw)
        except (ValueError, TypeError) as exc:  # BadValue is a ValueError
            raise ConfigError(f"{where}: bad {key}={raw!r}: {exc}") from None
    updated: dict[str, Any] = dict(changes.pop(None, {}))
    for section, fields in changes.items():
        if section is None:
            continue  # top-level fields, applied above
        updated[section] = dataclasses.replace(getattr(spec, section), **fields)
    return dataclasses.replace(spec, **updated)


def parse_analysis(text: str, base: dict[str, AnalysisSpec]) -> AnalysisSpec:
    """`NAME` or `NAME:key=value,key=value` over the run-wide spec of that kind."""
    kind, _, rest = text.partition(":")
    kind = kind.strip()
    if kind not in ANALYSIS_KINDS:
        raise ConfigError(f"bad --analysis {text!r}: choose from {', '.join(ANALYSIS_KINDS)}")
    options: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"bad --analysis {text!r}: options are key=value, comma-separated")
        key = key.strip().replace("-", "_")
        if key in options:
            raise ConfigError(f"bad --analysis {text!r}: {key} is given twice")
        options[key] = value
    return with_options(base[kind], options, f"--analysis {text!r}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error
    (safe_load keeps the last one silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_pipeline(path: str, base: dict[str, AnalysisSpec]) -> list[AnalysisSpec]:
    """Analyses of a pipeline YAML file (see README, "Pipeline files")."""
    from pipeline.models.checkpoint import read_bytes

    # A pipeline file lists a few analyses (a few KiB): 1 MiB is ample, and stops
    # a device or an endless stream before it fills memory or the YAML parser.
    raw = read_bytes(path, what="pipeline file", max_bytes=1 << 20)
    try:
        data = yaml.load(raw, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"pipeline file {path!r} is not valid YAML: "
                          f"{' '.join(str(exc).split())}") from None
    items = data.get("analyses") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"pipeline file {path!r} needs a non-empty 'analyses:' list")
    specs = []
    for index, item in enumerate(items):
        where = f"{path}: analyses[{index}]"
        if not isinstance(item, dict) or item.get("analysis") not in ANALYSIS_KINDS:
            raise ConfigError(f"{where}: each entry needs 'analysis:' set to one of "
                              f"{', '.join(ANALYSIS_KINDS)}")
        options = {k: v for k, v in item.items() if k not in ("analysis", "resources")}
        options.update(item.get("resources") or {})
        specs.append(with_options(base[item["analysis"]], options, where))
    return specs


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """The analysis flags of `vidlake label` (and later `relabel`)."""
    group = parser.add_argument_group("analyses")
    group.add_argument("--analysis", action="append", metavar="NAME[:key=value,...]",
                       help="an analysis to run, repeatable: frame_labels, frame_embeddings, "
                            "clip_labels, detections, shots. Options after ':' override the "
                            "flags below for this analysis (model=, weights=, sample=, size=, "
                            "clip_len=, threshold=, actors=, num_gpus=, batch=...). Default: "
                            "the analysis --model or the --weights checkpoint implies")
    group.add_argument("--pipeline", metavar="YAML",
                       help="pipeline file listing the analyses (instead of --analysis)")
    group.add_argument("--clip-len", type=integer(0, MAX_CLIP_LEN), default=0,
                       help="frames per clip (default: the clip model's documented length)")
    group.add_argument("--clip-step", type=integer(0, MAX_CLIP_LEN), default=0,
                       help="frame step inside a clip (default: the checkpoint's, else 1)")
    group.add_argument("--clips-per-video", type=integer(1, MAX_CLIPS_PER_VIDEO), default=1,
                       help="clips per video, centred in equal segments (default 1)")
    group.add_argument("--clip-stride", type=integer(0, 10**9), default=0,
                       help="frames between clip starts (overrides --clips-per-video)")
    group.add_argument("--score-threshold", type=fraction, default=0.5,
                       help="detections: lowest box score kept (default 0.5)")
    group.add_argument("--max-boxes", type=integer(1, 10_000), default=100,
                       help="detections: most boxes per frame (default 100)")
    group.add_argument("--shot-threshold", type=fraction, default=ShotSpec.threshold,
                       help="shots: content score (0-1) that makes a cut (default 0.106)")
    group.add_argument("--shot-adaptive", type=number(0, 1000), default=0.0,
                       help="shots: cut when a frame's score is this many times its "
                            "neighbours' mean (0, the default: fixed threshold only)")
    group.add_argument("--min-shot-len", type=integer(1, 10**9), default=ShotSpec.min_shot_len,
                       help="shots: fewest frames in a shot (default 15)")


def base_specs(args: argparse.Namespace) -> dict[str, AnalysisSpec]:
    """The run-wide spec of each analysis kind from the flags."""
    clip = ClipSpec(clip_len=args.clip_len, frame_step=args.clip_step,
                    clips_per_video=args.clips_per_video, stride=args.clip_stride)
    detection = DetectionSpec(score_threshold=args.score_threshold, max_boxes=args.max_boxes)
    shots = ShotSpec(threshold=args.shot_threshold, adaptive=args.shot_adaptive,
                     min_shot_len=args.min_shot_len)
    return {kind: AnalysisSpec(kind, clip=clip, detection=detection, shots=shots)
            for kind in ANALYSIS_KINDS}


def analyses_from_args(args: argparse.Namespace, model: ModelSpec,
                       model_flags_given: bool) -> tuple[AnalysisSpec, ...]:
    """The run's analyses from --analysis/--pipeline; () when neither is given
    (the run then has the one analysis its model implies)."""
    if args.analysis and args.pipeline:
        raise ConfigError("give either --analysis or --pipeline, not both")
    base = base_specs(args)
    if args.pipeline:
        return tuple(load_pipeline(args.pipeline, base))
    if not args.analysis:
        return ()
    specs = [parse_analysis(text, base) for text in args.analysis]
    return _apply_model_flags(specs, model, model_flags_given)


def _apply_model_flags(specs: list[AnalysisSpec], model: ModelSpec,
                       given: bool) -> tuple[AnalysisSpec, ...]:
    """--model/--weights/--labels/--top-k/--embeddings belong to the one model
    analysis that names no model of its own."""
    open_specs = [s for s in specs if s.needs_model and s.model == ModelSpec("auto")]
    if given and len(open_specs) != 1:
        raise ConfigError("--model/--weights/--labels apply to exactly one model analysis; "
                          "with several, give each its own: --analysis "
                          "clip_labels:model=r3d_18,weights=URI")
    out = []
    for spec in specs:
        if spec in open_specs and given:
            outputs = spec.outputs
            if model.embeddings and spec.kind == "frame_labels":
                outputs = ("frame_labels", "frame_embeddings")
            spec = dataclasses.replace(spec, model=dataclasses.replace(model, embeddings=False),
                                       outputs=outputs)
        out.append(spec)
    return tuple(out)
