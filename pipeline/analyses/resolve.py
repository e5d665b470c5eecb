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

from pipeline.analyses.kinds import KINDS
from pipeline.analyses.model_loader import UNTRAINED_VERSION
from pipeline.analyses.spec_options import (
    embedding_outputs,
    refuse_for_kind,
    refuse_unused,
    with_run_options,
)
from pipeline.config import AnalysisSpec, FrameSize, LabelConfig, ModelSpec, SampleSpec
from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.models.checkpoint import (
    WEIGHTS_MAX_BYTES,
    CheckpointHeader,
    content_version,
    peek_checkpoint,
    read_bytes,
    read_label_names,
)
from pipeline.plan.planner import analysis_key
from pipeline.storage_options import StorageOptions

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


class _WeightsFiles:
    """Reads each weights file of a run once (a file may be gigabytes, on S3,
    and be named by the implied analysis and by several analyses alike)."""

    def __init__(self, storage: StorageOptions) -> None:
        self.storage = storage
        self._seen: dict[str, tuple[str, CheckpointHeader | None]] = {}

    def read(self, uri: str | None, requested: str | None) -> _Weights:
        """The content hash and checked header of the weights at `uri`. Custom
        builders' config keys are checked in the actor, which imports the
        builder (its signature declares them); here, a custom config is checked
        plain."""
        if not uri:
            return _Weights(UNTRAINED_VERSION, None, {})
        where = f"weights {uri!r}"
        if uri not in self._seen:
            raw = read_bytes(uri, self.storage, what="weights", max_bytes=WEIGHTS_MAX_BYTES)
            self._seen[uri] = (content_version(raw), peek_checkpoint(raw, where=where))
        version, header = self._seen[uri]
        if header is None:  # a plain state_dict: --model names the arch
            return _Weights(version, None, {})
        arch = registry.checkpoint_arch(header.arch, requested, where)
        registry.check_config(arch, header.config, where)
        return _Weights(version, arch, header.config)


def implied_analysis(config: LabelConfig, weights: _WeightsFiles) -> AnalysisSpec:
    """The one analysis of a run without --analysis: what --model names, else what
    the checkpoint's architecture implies, else frame labels."""
    model = config.model
    arch = model.name if model.name != "auto" else \
        weights.read(model.weights_uri, None).arch
    kind = (registry.kind_for_arch(arch) if arch else None) or "frame_labels"
    if model.top_k != ModelSpec("auto").top_k:  # --top-k given
        refuse_for_kind(KINDS[kind], {"top_k": "--top-k"}, kind)
    outputs = embedding_outputs(kind, (kind,)) if model.embeddings else (kind,)
    spec = AnalysisSpec(kind, model=dataclasses.replace(model, embeddings=False),
                        outputs=outputs)
    return with_run_options(spec, config.run_options)


def _with_flags(specs: list[AnalysisSpec], config: LabelConfig) -> list[AnalysisSpec]:
    """Run-wide --sample/--size fill what each analysis leaves open, where the
    kind takes them run-wide (not shots: it reads consecutive frames); refused
    when no analysis of the run does."""
    takers = [s for s in specs if KINDS[s.kind].run_wide_sample]
    for flag, value in (("--sample", config.sample), ("--size", config.size)):
        name = flag[2:]
        if value is not None and not any(name in KINDS[s.kind].common for s in takers):
            having = [k.name for k in KINDS.values() if k.run_wide_sample and name in k.common]
            raise ConfigError(f"{flag} applies to {', '.join(having)}; this run has "
                              f"{', '.join(dict.fromkeys(s.kind for s in specs))} (give it "
                              f"per analysis: --analysis KIND:{name}=...)")
    return [dataclasses.replace(s, sample=s.sample or _taken(s, "sample", config.sample),
                                size=s.size or _taken(s, "size", config.size))
            if s in takers else s for s in specs]


def _taken(spec: AnalysisSpec, name: str, value: Any) -> Any:
    """`value` if the kind of `spec` takes the option `name`, else None."""
    return value if name in KINDS[spec.kind].common else None


def _clip_defaults(spec: AnalysisSpec, arch: str, weights: _Weights) -> AnalysisSpec:
    """Clip length, frame step and size: the options, else what the checkpoint
    was trained with, else what the architecture documents. A custom builder's
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
    own = spec.options
    options = dataclasses.replace(own, clip_len=own.clip_len or clip_len,
                                  frame_step=own.frame_step or step)
    return dataclasses.replace(spec, options=options, size=spec.size or size)


def _frame_size(spec: AnalysisSpec, arch: str, weights: _Weights) -> FrameSize | None:
    """--size, else the input size a trained frame CNN checkpoint records, else the
    kind's default (a custom builder's config holds its own options: it sizes
    nothing here)."""
    side = weights.config.get("input_size") if arch in registry.FAMILIES["frame"] else None
    return spec.size or (FrameSize(int(side), int(side)) if side else KINDS[spec.kind].size)


def _fill(spec: AnalysisSpec, files: _WeightsFiles) -> ResolvedAnalysis:
    kind = KINDS[spec.kind]
    if kind.family is None:  # no model: the options name the method and version
        spec = dataclasses.replace(spec, size=spec.size or kind.size)
        method = spec.options.method_name() or spec.kind
        spec = dataclasses.replace(spec, sample=spec.sample or kind.sample)
        return ResolvedAnalysis(spec.kind, spec, method, method)
    requested = None if spec.model.name == "auto" else spec.model.name
    if requested:
        registry.check_arch(kind.family, requested)  # before any weights are read
    weights = files.read(spec.model.weights_uri, requested)
    if spec.model.labels_uri:  # read again where the model loads; checked here first
        read_label_names(spec.model.labels_uri, files.storage)
    arch = weights.arch or requested or registry.DEFAULT_ARCH[kind.family]
    registry.check_arch(kind.family, arch)
    # clips are cut from the frames the checkpoint was trained on, unless told otherwise
    trained = weights.config.get("sample") if spec.options.clips() is not None else None
    spec = dataclasses.replace(spec, sample=spec.sample or (
        SampleSpec.parse(trained) if trained else kind.sample))
    if spec.options.clips() is not None:
        spec = _clip_defaults(spec, arch, weights)
    else:
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
    ConfigError when two of them would write the same rows, or when a flag the
    user gave applies to none of them."""
    files = _WeightsFiles(config.storage)
    specs = list(config.analyses) or [implied_analysis(config, files)]
    refuse_unused(config.run_options, (s.kind for s in specs))
    resolved = [_fill(s, files) for s in _with_flags(specs, config)]
    _refuse_twins(resolved)
    named: list[ResolvedAnalysis] = []
    for item in _merge_frame_outputs(resolved):
        taken = sum(1 for n in named if n.spec.kind == item.spec.kind)
        name = item.spec.kind if not taken else f"{item.spec.kind}_{taken + 1}"
        named.append(dataclasses.replace(item, name=name))
    return named
