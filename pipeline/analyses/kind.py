"""AnalysisKind: everything one analysis declares about itself.

An analysis module ends with one `AnalysisKind`; `kinds.py` lists them. The
CLI, pipeline files, resolution, planning, the engines and docs/analyses.md
read only these declarations: no shared record carries sections for other
kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipeline.analyses.options import COMMON, OptionInfo, declared
from pipeline.config import FrameSize, SampleSpec

if TYPE_CHECKING:
    from pipeline.analyses.base import Analysis

DEFAULT_SAMPLE = SampleSpec("uniform", 8)
# (name, spec, *, storage, threads, micro_batch) -> the analysis object, built light
Build = Callable[..., "Analysis"]


@dataclass(frozen=True)
class AnalysisKind:
    """One analysis kind.

    - `options`: its options dataclass (see options.py); `common`: which of the
      shared options (model, sample, size, resources...) it takes.
    - `tables`: the tables it writes, with their schemas; the first is its own.
    - `family`: the model family it runs (frame, clip, detection), whose
      --model/--weights it takes; None for none: its options then name its
      method and version (`method()`), and it runs in the decode worker, next
      to the frames, unless its analysis is a model of its own on actors
      (`on_decoder` False: TransNetV2, which brings its weights).
    - Several kinds may write one table (shots) if they declare the same schema.
    - `sample`/`size`: its defaults when the run leaves them open (`size` None:
      the video's aspect ratio, scaled by the analysis).
    - `run_wide_sample`: whether the run-wide --sample/--size apply to it.
    - `max_batch`: frames (clips) per forward pass at most, unless `batch=`.
    - `variants`: `method=` values that are kinds of their own (a method that
      needs a model on actors, with its own options): `shots:method=transnetv2`
      is the `shots_transnetv2` kind.
    """

    name: str
    summary: str
    options: type
    common: tuple[str, ...]
    tables: dict[str, pa.Schema]
    build: Build
    family: str | None = None
    sample: SampleSpec = DEFAULT_SAMPLE
    size: FrameSize | None = None
    run_wide_sample: bool = True
    max_batch: int = 256
    variants: dict[str, str] = field(default_factory=dict)

    def option_table(self) -> dict[str, OptionInfo]:
        """Every option it takes (shared ones first), by name."""
        return {**{n: COMMON[n] for n in self.common}, **declared(self.options)}

    def default_options(self) -> Any:
        return self.options()
