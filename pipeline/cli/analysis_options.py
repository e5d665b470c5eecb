"""`--analysis NAME[:key=value,...]`, run-wide analysis flags and pipeline YAML
files -> AnalysisSpecs, validated before any work.

The flags and keys come from what each analysis declares
(pipeline/analyses/<kind>.py, listed in pipeline/analyses/kinds.py).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import yaml

from pipeline.analyses.kinds import KINDS, kind_named
from pipeline.analyses.spec_options import (
    RunOptions,
    embedding_outputs,
    normal_key,
    refuse_for_kind,
    run_wide_options,
    with_options,
    with_run_options,
)
from pipeline.config import AnalysisSpec, ModelSpec
from pipeline.errors import ConfigError


def _variant(kind: str, options: dict[str, Any]) -> str:
    """The kind a `method=` option names when that method is a kind of its own
    (`shots:method=transnetv2` is `shots_transnetv2`); `options` loses the key."""
    method = options.get("method")
    target = KINDS[kind].variants.get(str(method).strip()) if method is not None else None
    if target is None:
        return kind
    del options["method"]
    return target


def _base(kind: str, run_options: RunOptions) -> AnalysisSpec:
    """The spec of `kind` with the run-wide options it has."""
    return with_run_options(AnalysisSpec(kind), run_options)


def parse_analysis(text: str, run_options: RunOptions = ()) -> AnalysisSpec:
    """`NAME` or `NAME:key=value,key=value` over the run-wide options."""
    kind, _, rest = text.partition(":")
    kind = kind_named(kind.strip(), f"bad --analysis {text!r}").name
    options: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"bad --analysis {text!r}: options are key=value, comma-separated")
        key = normal_key(key)
        if key in options:
            raise ConfigError(f"bad --analysis {text!r}: {key} is given twice")
        options[key] = value
    kind = _variant(kind, options)
    return with_options(_base(kind, run_options), options, f"--analysis {text!r}")


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


def load_pipeline(path: str, run_options: RunOptions = ()) -> list[AnalysisSpec]:
    """Analyses of a pipeline YAML file (see docs/analyses.md, "Pipeline files")."""
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
        if not isinstance(item, dict) or item.get("analysis") not in KINDS:
            raise ConfigError(f"{where}: each entry needs 'analysis:' set to one of "
                              f"{', '.join(KINDS)}")
        options = {normal_key(k): v for k, v in item.items() if k not in ("analysis", "resources")}
        resources = item.get("resources") or {}
        if not isinstance(resources, dict):
            raise ConfigError(f"{where}: 'resources:' must be a mapping")
        for key, value in resources.items():
            if normal_key(key) in options:
                raise ConfigError(f"{where}: option {normal_key(key)!r} is given twice")
            options[normal_key(key)] = value
        kind = _variant(item["analysis"], options)
        specs.append(with_options(_base(kind, run_options), options, where))
    return specs


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """The analysis flags of `vidlake label` and `relabel`: --analysis,
    --pipeline, and one flag per run-wide option an analysis declares."""
    group = parser.add_argument_group("analyses")
    group.add_argument("--analysis", action="append", metavar="NAME[:key=value,...]",
                       help=f"an analysis to run, repeatable: {', '.join(KINDS)}. Options "
                            "after ':' override the run-wide flags for this analysis "
                            "(docs/analyses.md lists each kind's). Default: the analysis "
                            "--model or the --weights checkpoint implies")
    group.add_argument("--pipeline", metavar="YAML",
                       help="pipeline file listing the analyses (instead of --analysis)")
    for name, (info, kinds) in run_wide_options().items():
        group.add_argument(str(info.flag), dest=f"option_{name}", type=info.parse, default=None,
                           metavar=name.upper(),
                           help=f"{', '.join(kinds)}: {info.help} (default {info.default_text})")


def run_options_from_args(args: argparse.Namespace) -> tuple[tuple[str, Any], ...]:
    """(option, value) of each run-wide option flag the user gave."""
    return tuple((name, getattr(args, f"option_{name}")) for name in run_wide_options()
                 if getattr(args, f"option_{name}", None) is not None)


def analyses_from_args(args: argparse.Namespace, model: ModelSpec,
                       model_flags: dict[str, str]) -> tuple[AnalysisSpec, ...]:
    """The run's analyses from --analysis/--pipeline; () when neither is given
    (the run then has the one analysis its model implies). `model_flags`: the
    model flags the user gave (option -> flag)."""
    if args.analysis and args.pipeline:
        raise ConfigError("give either --analysis or --pipeline, not both")
    run_options = run_options_from_args(args)
    if args.pipeline:
        specs = load_pipeline(args.pipeline, run_options)
    elif args.analysis:
        specs = [parse_analysis(text, run_options) for text in args.analysis]
    else:
        return ()
    return _apply_model_flags(specs, model, model_flags)


def _apply_model_flags(specs: list[AnalysisSpec], model: ModelSpec,
                       flags: dict[str, str]) -> tuple[AnalysisSpec, ...]:
    """--model/--weights/--labels/--top-k/--embeddings belong to the one model
    analysis that names no model of its own, and must be options it takes."""
    open_specs = [s for s in specs if KINDS[s.kind].family and s.model == ModelSpec("auto")]
    if flags and len(open_specs) != 1:
        raise ConfigError(f"{', '.join(flags.values())} apply to exactly one model analysis; "
                          "with several, give each its own: --analysis "
                          "clip_labels:model=r3d_18,weights=URI")
    out = []
    for spec in specs:
        if spec in open_specs and flags:
            kind = KINDS[spec.kind]
            refuse_for_kind(kind, {k: v for k, v in flags.items() if k != "embeddings"},
                            spec.kind)
            outputs = spec.outputs
            if model.embeddings:
                outputs = embedding_outputs(spec.kind, outputs)
            spec = dataclasses.replace(spec, model=dataclasses.replace(model, embeddings=False),
                                       outputs=outputs)
        out.append(spec)
    return tuple(out)
