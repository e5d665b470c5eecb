"""Turn a run's flags or pipeline file into resolved analyses, on the driver.

Resolution fills every default an analysis leaves open (frames, size, clip
length) from what its model documents, reads each weights file once for its
content hash, and names the analyses. It never imports torch: a checkpoint's
architecture and options are read straight from its pickle, and checked as
the actors check them (a built-in arch or the builder the user named, only
the options that arch declares, plain values in range), as are --labels
files: a bad file fails here, before any work (docs/security.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pipeline.analyses.model_loader import UNTRAINED_VERSION
from pipeline.config import AnalysisSpec, FrameSize, LabelConfig, SampleSpec
from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.models.checkpoint import (
    WEIGHTS_MAX_BYTES,
    content_version,
    peek_checkpoint,
    read_bytes,
    read_label_names,
)
from pipeline.plan.planner import analysis_key
from pipeline.storage_options import StorageOptions

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


def _read_weights(uri: str | None, storage: StorageOptions, requested: str | None,
                  ) -> _Weights:
    """The content hash and checked header of the weights at `uri`. Custom
    builders' config keys are checked in the actor, which imports the builder
    (its signature declares them); here, a custom config is checked plain."""
    if not uri:
        return _Weights(UNTRAINED_VERSION, None, {})
    where = f"weights {uri!r}"
    raw = read_bytes(uri, storage, what="weights", max_bytes=WEIGHTS_MAX_BYTES)
    header = peek_checkpoint(raw, where=where)
    if header is None:  # a plain state_dict: --model names the arch
        return _Weights(content_version(raw), None, {})
    arch = registry.checkpoint_arch(header.arch, requested, where)
    registry.check_config(arch, header.config, where)
    return _Weights(content_version(raw), arch, header.config)


def implied_analysis(config: LabelConfig, storage: StorageOptions) -> AnalysisSpec:
    """The one analysis of a run without --analysis: what --model names, else what
    the checkpoint's architecture implies, else frame labels."""
    model = config.model
    arch = model.name if model.name != "auto" else \
        _read_weights(model.weights_uri, storage, None).arch
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
    trained with, else what the architecture documents. A custom builder's
    config holds its own keyword options, not vidlake's: it sizes nothing here."""
    step = 1
    if arch in registry.RNN_ARCHS:
        options = {**CNN_RNN_DEFAULTS, **(weights.config.get("cnn_rnn") or {})}
        side, clip_len = int(options["input_size"]), int(options["clip_len"])
        size, step = FrameSize(side, side), int(options.get("frame_step", 1))
    elif arch in registry.CLIP_DEFAULTS:
        width, height, clip_len = registry.CLIP_DEFAULTS[arch]
        trained = weights.config.get("clip") or {}
        if trained:  # resize is (H, W), as in ClipPreprocess
            height, width = (int(v) for v in trained["resize"])
            clip_len, step = int(trained["clip_len"]), int(trained.get("frame_step", 1))
        size = FrameSize(width, height)
    else:  # a custom builder: the user says what it needs
        size, clip_len = FrameSize(112, 112), 8
    clip = dataclasses.replace(spec.clip, clip_len=spec.clip.clip_len or clip_len,
                               frame_step=spec.clip.frame_step or step)
    return dataclasses.replace(spec, clip=clip, size=spec.size or size)


def _frame_size(spec: AnalysisSpec, arch: str, weights: _Weights) -> FrameSize:
    """--size, else the input size a trained frame CNN checkpoint records, else 224
    (a custom builder's config holds its own options: it sizes nothing here)."""
    side = weights.config.get("input_size") if arch in registry.FAMILIES["frame"] else None
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
    weights = _read_weights(spec.model.weights_uri, storage, requested)
    if spec.model.labels_uri:  # read again where the model loads; checked here first
        read_label_names(spec.model.labels_uri, storage)
    arch = weights.arch or requested or registry.DEFAULT_ARCH[family]
    registry.check_arch(family, arch)
    spec = dataclasses.replace(spec, sample=spec.sample or DEFAULT_SAMPLE)
    if family == "clip":
        spec = _clip_defaults(spec, arch, weights)
    elif family == "frame":
        spec = dataclasses.replace(spec, size=_frame_size(spec, arch, weights))
    return ResolvedAnalysis(spec.kind, spec, weights.version, arch)


def _refuse_twins(resolved: list[ResolvedAnalysis]) -> None:
    """ConfigError when two analyses would write the same rows: the same output
    under the same analysis key (same kind, model version and output-changing
    options). Two of a kind that differ in those are fine."""
    seen: set[tuple[str, str]] = set()
    for item in resolved:
        for output in item.spec.outputs:
            key = (output, analysis_key(item.spec, item.version, output))
            if key in seen:
                raise ConfigError(
                    f"--analysis {item.spec.kind} is given twice with the same options: its "
                    f"{output} rows would be written twice; drop one, or make them differ "
                    f"(another model, frames or threshold)")
            seen.add(key)


def _merge_frame_outputs(resolved: list[ResolvedAnalysis]) -> list[ResolvedAnalysis]:
    """frame_labels and frame_embeddings of the same model, version, frames and
    size share one forward pass."""
    frame_kinds = ("frame_labels", "frame_embeddings")
    merged: list[ResolvedAnalysis] = []
    for item in resolved:
        spec = item.spec
        twin = next((m for m in merged if m.spec.kind in frame_kinds and spec.kind in frame_kinds
                     and m.version == item.version
                     and (m.spec.model, m.spec.sample, m.spec.size)
                     == (spec.model, spec.sample, spec.size)), None)
        if twin is None:
            merged.append(item)
            continue
        outputs = tuple(dict.fromkeys((*twin.spec.outputs, *spec.outputs)))
        merged[merged.index(twin)] = dataclasses.replace(
            twin, spec=dataclasses.replace(twin.spec, outputs=outputs))
    return merged


def resolve_analyses(config: LabelConfig) -> list[ResolvedAnalysis]:
    """Every analysis of the run, resolved and uniquely named (kind, kind_2...);
    ConfigError when two of them would write the same rows."""
    specs = [_with_flags(s, config) for s in config.analyses] or \
        [implied_analysis(config, config.storage)]
    resolved = [_fill(s, config.storage) for s in specs]
    _refuse_twins(resolved)
    named: list[ResolvedAnalysis] = []
    for item in _merge_frame_outputs(resolved):
        taken = sum(1 for n in named if n.spec.kind == item.spec.kind)
        name = item.spec.kind if not taken else f"{item.spec.kind}_{taken + 1}"
        named.append(dataclasses.replace(item, name=name))
    return named
