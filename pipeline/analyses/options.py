"""Options an analysis declares: typed, ranged, documented dataclass fields.

Each analysis module declares its options as a frozen dataclass whose fields
are made with `option()`: the default, the parser (which checks type, NaN,
sign and range), the help text, the run-wide flag that sets it for every
analysis of a run that has it (if any), and whether it changes the output
(then it is part of the analysis key). `--analysis NAME:key=value`, pipeline
files, the run-wide flags and docs/analyses.md are all made from these
declarations, so they cannot disagree.

The options every analysis shares (model, weights, labels, top_k, sample,
size and the Ray resources) are declared once, in `COMMON`; a kind lists which
of them it takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.config import ClipSpec, FrameSize, SampleSpec
from pipeline.errors import ConfigError
from pipeline.values import integer, number

_META = "vidlake"


@dataclass(frozen=True)
class OptionInfo:
    """One option: its name in `key=value` form, its parser and documentation.

    `flag`: the run-wide flag that sets it ("--max-boxes"), or None.
    `keyed`: changes the rows written (part of the analysis key).
    `target`: for a common option, the (section, field) of AnalysisSpec it sets.
    `shown`: the default as documented, when the value alone says too little.
    """

    name: str
    parse: Callable[[Any], Any]
    help: str
    default: Any = None
    flag: str | None = None
    keyed: bool = True
    target: tuple[str | None, str] | None = None
    shown: str | None = None

    @property
    def default_text(self) -> str:
        if self.shown is not None:
            return self.shown
        return f"{self.default:.4g}" if isinstance(self.default, float) else str(self.default)


def option(default: Any, parse: Callable[[Any], Any], help: str, *,
           flag: str | None = None, keyed: bool = True, shown: str | None = None) -> Any:
    """A dataclass field that is an analysis option (see the module docstring)."""
    info = OptionInfo("", parse, help, default, flag, keyed, shown=shown)
    return dataclasses.field(default=default, metadata={_META: info})


class AnalysisOptions:
    """Base of every analysis's options dataclass: hooks that say what the
    analysis needs decoded (frames by default)."""

    def clips(self) -> ClipSpec | None:
        """The clips to read (clip analyses), or None for sampled frames."""
        return None

    def context(self) -> int:
        """Sampled frames read on either side of a unit's own (-1: none)."""
        return -1

    def method_name(self) -> str | None:
        """For an analysis without a model: the method its options select, which
        stands for the model and its version in the tables (None: its kind)."""
        return None

    def reads_source_size(self) -> bool:
        """Whether, without a size, it reads frames at the video's own size
        (else its kind's default size, or the detections' rule)."""
        return False


@dataclass(frozen=True)
class NoOptions(AnalysisOptions):
    """An analysis with no options of its own."""


def declared(cls: type) -> dict[str, OptionInfo]:
    """Option name -> OptionInfo of an options dataclass, in declaration order."""
    out = {}
    for f in dataclasses.fields(cls):
        info = f.metadata.get(_META)
        if info is not None:
            out[f.name] = dataclasses.replace(info, name=f.name)
    return out


def keyed_values(options: object) -> str:
    """`name=value` of each output-changing option, for the analysis key."""
    infos = declared(type(options))
    return ",".join(f"{n}={getattr(options, n)!r}" for n, i in infos.items() if i.keyed)


def parse_value(info: OptionInfo, raw: Any, where: str) -> Any:
    """`raw` parsed as `info` says; ConfigError naming `where` when bad."""
    try:
        return info.parse(raw)
    except (ValueError, TypeError) as exc:  # BadValue is a ValueError
        raise ConfigError(f"{where}: bad {info.name}={raw!r}: {exc}") from None


def _sample(value: Any) -> SampleSpec:
    return SampleSpec.parse(str(value))


def _size(value: Any) -> FrameSize:
    return FrameSize.parse(str(value))


def _common(name: str, section: str | None, field: str, parse: Callable[[Any], Any],
            help: str, *, keyed: bool = True) -> OptionInfo:
    return OptionInfo(name, parse, help, None, None, keyed, (section, field))


# Options every analysis may take (each kind says which): where they live in
# AnalysisSpec. Their run-wide flags (--model, --sample...) are the label
# command's own: see pipeline/cli/analysis_options.py.
COMMON: dict[str, OptionInfo] = {o.name: o for o in (
    _common("model", "model", "name", str, "architecture (or package.module:function builder)"),
    _common("weights", "model", "weights_uri", str, "weights file URI (local or s3)"),
    _common("labels", "model", "labels_uri", str, "label names file URI", keyed=False),
    _common("top_k", "model", "top_k", integer(1, 10_000), "labels kept per frame or clip"),
    _common("sample", None, "sample", _sample,
            "frames: uniform:N, fps:F, every:K, all or keyframes (~: snapped to keyframes)"),
    _common("size", None, "size", _size, "decoded size: N or WxH"),
    _common("actors", "resources", "actors", integer(1, 4096), "model actors", keyed=False),
    _common("num_gpus", "resources", "num_gpus", number(0, 64), "GPUs per actor",
            keyed=False),
    _common("num_cpus", "resources", "num_cpus", number(0, 1024), "CPUs per actor",
            keyed=False),
    _common("batch", "resources", "batch", integer(1, 1 << 20),
            "frames (clips) per forward pass", keyed=False),
)}
