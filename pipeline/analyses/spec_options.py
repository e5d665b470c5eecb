"""Options applied to AnalysisSpecs, checked against what each kind declares.

Per-analysis options (`--analysis NAME:key=value`, pipeline files) and
run-wide option flags (`--max-boxes`...) both land here. A run-wide flag
applies to every analysis of the run that has that option, below the
analysis's own value; a flag that no analysis of the run has is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipeline.analyses.kind import AnalysisKind
from pipeline.analyses.kinds import KINDS
from pipeline.analyses.options import OptionInfo, declared, parse_value
from pipeline.config import AnalysisSpec
from pipeline.errors import ConfigError

RunOptions = Sequence[tuple[str, Any]]  # (option name, parsed value) of run-wide flags


def normal_key(key: object) -> str:
    """`max-boxes` and ` max_boxes ` are both `max_boxes`."""
    return str(key).strip().replace("-", "_")


def with_options(spec: AnalysisSpec, values: Mapping[str, Any], where: str) -> AnalysisSpec:
    """`spec` with `values` (option name -> raw value) parsed and applied;
    ConfigError naming `where` for an option its kind does not take or a bad value."""
    kind = KINDS[spec.kind]
    table = kind.option_table()
    sections: dict[str | None, dict[str, Any]] = {}
    own: dict[str, Any] = {}
    for key, raw in values.items():
        name = normal_key(key)
        if name not in table:
            raise ConfigError(f"{where}: {spec.kind} has no option {name!r}; its options are "
                              f"{', '.join(table)}")
        info = table[name]
        value = parse_value(info, raw, where)
        if info.target is None:
            own[name] = value
        else:
            section, field = info.target
            sections.setdefault(section, {})[field] = value
    changes: dict[str, Any] = dict(sections.pop(None, {}))
    for section, fields in sections.items():
        changes[str(section)] = dataclasses.replace(getattr(spec, str(section)), **fields)
    return dataclasses.replace(spec, options=dataclasses.replace(spec.options, **own), **changes)


def run_wide_options() -> dict[str, tuple[OptionInfo, tuple[str, ...]]]:
    """Option name -> (its declaration, the kinds that have it), for every option
    a kind declares with a run-wide flag."""
    out: dict[str, tuple[OptionInfo, tuple[str, ...]]] = {}
    for kind in KINDS.values():
        for name, info in declared(kind.options).items():
            if info.flag:
                known = out.get(name)
                if known and known[0].flag != info.flag:
                    raise AssertionError(f"option {name} has two flags: {known[0].flag}, "
                                         f"{info.flag}")
                out[name] = (known[0] if known else info, (*(known[1] if known else ()),
                                                             kind.name))
    return out


def with_run_options(spec: AnalysisSpec, run_options: RunOptions) -> AnalysisSpec:
    """`spec` with the run-wide options its kind has (values already parsed)."""
    own = declared(KINDS[spec.kind].options)
    values = {n: v for n, v in run_options if n in own}
    return dataclasses.replace(spec, options=dataclasses.replace(spec.options, **values))


def refuse_unused(run_options: RunOptions, kinds: Iterable[str]) -> None:
    """ConfigError for a run-wide option flag no analysis of the run has."""
    present = tuple(dict.fromkeys(kinds))
    table = run_wide_options()
    for name, _ in run_options:
        info, having = table[name]
        if not set(having) & set(present):
            raise ConfigError(f"{info.flag} applies to {', '.join(having)}; this run has "
                              f"{', '.join(present)}")


def refuse_for_kind(kind: AnalysisKind, flags: Mapping[str, str], present: str) -> None:
    """ConfigError when a shared-option flag the user gave (option -> flag) is
    one `kind` does not take ("--top-k applies to frame_labels, clip_labels...")."""
    for name, flag in flags.items():
        if name not in kind.common:
            having = [k.name for k in KINDS.values() if name in k.common]
            raise ConfigError(f"{flag} applies to {', '.join(having)}; this run has {present}")


def embedding_outputs(kind: str, outputs: tuple[str, ...]) -> tuple[str, ...]:
    """`outputs` with frame_embeddings added (--embeddings); ConfigError unless
    the analysis is frame_labels."""
    if kind != "frame_labels":
        raise ConfigError(f"--embeddings applies to frame_labels; this run has {kind}")
    return (*outputs, "frame_embeddings")
