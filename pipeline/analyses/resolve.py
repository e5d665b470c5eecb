"""Turn a run's flags or pipeline file into resolved analyses, on the driver.

Resolution fills every default an analysis leaves open (frames, size, clip
length) from what its model documents, reads each weights file once for its
content hash, and names the analyses. It never imports torch: a checkpoint's
architecture and options are read straight from its pickle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pipeline.analyses.model_loader import UNTRAINED_VERSION
from pipeline.config import AnalysisSpec, FrameSize, LabelConfig, SampleSpec
from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.models.checkpoint import content_version, peek_checkpoint, read_bytes
from pipeline.storage import StorageOptions

DEFAULT_SAMPLE = SampleSpec("uniform", 8)
FRAME_SIZE = FrameSize(224, 224)
SHOT_SIZE = FrameSize(64, 64)
CNN_RNN_DEFAULTS = {"input_size": 112, "clip_len": 8}


@dataclass(frozen=True)
class ResolvedAnalysis:
    """An analysis ready to plan: its unique name, full spec and model_version."""

    name: str
    spec: AnalysisSpec
    version: str
    arch: str  # the architecture as far as the driver knows it ("auto" never)


@dataclass(frozen=True)
class _Weights:
    version: str
    arch: str | None
    config: dict[str, Any]


def _read_weights(uri: str | None, storage: StorageOptions) -> _Weights:
    if not uri:
        return _Weights(UNTRAINED_VERSION, None, {})
    raw = read_bytes(uri, storage, what="weights")
    peek = peek_checkpoint(raw)
    return _Weights(content_version(raw), peek.get("arch"), peek.get("config") or {})


def implied_analysis(config: LabelConfig, storage: StorageOptions) -> AnalysisSpec:
    """The one analysis of a run without --analysis: what --model names, else what
    the checkpoint's architecture implies, else frame labels."""
    model = config.model
    arch = model.name if model.name != "auto" else _read_weights(model.weights_uri, storage).arch
    kind = (registry.kind_for_arch(arch) if arch else None) or "frame_labels"
    outputs = ("frame_labels", "frame_embeddings") if kind == "frame_labels" and \
        model.embeddings else (kind,)
    return AnalysisSpec(kind, model=model, sample=config.sample, size=config.size,
                        outputs=outputs)


def _with_flags(spec: AnalysisSpec, config: LabelConfig) -> AnalysisSpec:
    """Run-wide --sample/--size fill what the analysis leaves open (not shots)."""
    if spec.kind == "shots":
        return spec
    return dataclasses.replace(spec, sample=spec.sample or config.sample,
                               size=spec.size or config.size)


def _clip_defaults(spec: AnalysisSpec, arch: str, weights: _Weights) -> AnalysisSpec:
    """Clip length, frame step and size: the flags, else what the checkpoint was
    trained with, else what the architecture documents."""
    trained = weights.config.get("clip") or {}
    step = int(trained.get("frame_step", 1))
    if arch in registry.RNN_ARCHS:
        options = {**CNN_RNN_DEFAULTS, **(weights.config.get("cnn_rnn") or {})}
        side, clip_len = int(options["input_size"]), int(options["clip_len"])
        size, step = FrameSize(side, side), int(options.get("frame_step", 1))
    elif arch in registry.CLIP_DEFAULTS:
        width, height, clip_len = registry.CLIP_DEFAULTS[arch]
        if trained:  # resize is (H, W), as in ClipPreprocess
            height, width = (int(v) for v in trained["resize"])
            clip_len = int(trained["clip_len"])
        size = FrameSize(width, height)
    else:  # a custom builder: the user says what it needs
        size, clip_len = FrameSize(112, 112), 8
    clip = dataclasses.replace(spec.clip, clip_len=spec.clip.clip_len or clip_len,
                               frame_step=spec.clip.frame_step or step)
    return dataclasses.replace(spec, clip=clip, size=spec.size or size)


def _frame_size(spec: AnalysisSpec, weights: _Weights) -> FrameSize:
    """--size, else the input size a trained frame CNN checkpoint records, else 224."""
    side = weights.config.get("input_size")
    return spec.size or (FrameSize(int(side), int(side)) if side else FRAME_SIZE)


def _fill(spec: AnalysisSpec, storage: StorageOptions) -> ResolvedAnalysis:
    if spec.kind == "shots":
        spec = dataclasses.replace(spec, sample=spec.sample or SampleSpec("all"),
                                   size=spec.size or SHOT_SIZE)
        return ResolvedAnalysis(spec.kind, spec, spec.shots.detector, spec.shots.detector)
    family = registry.FAMILY_OF_KIND[spec.kind]
    requested = None if spec.model.name == "auto" else spec.model.name
    if requested:
        registry.check_arch(family, requested)  # before any weights are read
    weights = _read_weights(spec.model.weights_uri, storage)
    if weights.arch and requested and weights.arch != requested:
        raise ConfigError(f"--model {requested} but the checkpoint holds a {weights.arch}; "
                          "drop --model or pass the matching one")
    arch = weights.arch or requested or registry.DEFAULT_ARCH[family]
    registry.check_arch(family, arch)
    spec = dataclasses.replace(spec, sample=spec.sample or DEFAULT_SAMPLE)
    if family == "clip":
        spec = _clip_defaults(spec, arch, weights)
    elif family == "frame":
        spec = dataclasses.replace(spec, size=_frame_size(spec, weights))
    return ResolvedAnalysis(spec.kind, spec, weights.version, arch)


def _merge_frame_outputs(specs: list[AnalysisSpec]) -> list[AnalysisSpec]:
    """frame_labels and frame_embeddings of the same model, frames and size share
    one forward pass."""
    merged: list[AnalysisSpec] = []
    for spec in specs:
        twin = next((m for m in merged if m.kind in ("frame_labels", "frame_embeddings")
                     and spec.kind in ("frame_labels", "frame_embeddings")
                     and (m.model, m.sample, m.size) == (spec.model, spec.sample, spec.size)),
                    None)
        if twin is None:
            merged.append(spec)
            continue
        outputs = tuple(dict.fromkeys((*twin.outputs, *spec.outputs)))
        merged[merged.index(twin)] = dataclasses.replace(twin, outputs=outputs)
    return merged


def resolve_analyses(config: LabelConfig) -> list[ResolvedAnalysis]:
    """Every analysis of the run, resolved and uniquely named (kind, kind_2...)."""
    specs = [_with_flags(s, config) for s in config.analyses] or \
        [implied_analysis(config, config.storage)]
    resolved = [_fill(s, config.storage) for s in _merge_frame_outputs(specs)]
    named: list[ResolvedAnalysis] = []
    for item in resolved:
        taken = sum(1 for n in named if n.spec.kind == item.spec.kind)
        name = item.spec.kind if not taken else f"{item.spec.kind}_{taken + 1}"
        named.append(dataclasses.replace(item, name=name))
    return named
