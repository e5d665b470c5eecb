"""Build the Analysis object of a resolved analysis (light: no model loaded)."""

from __future__ import annotations

from pipeline.analyses.base import Analysis
from pipeline.analyses.kinds import KINDS
from pipeline.analyses.resolve import ResolvedAnalysis
from pipeline.storage_options import StorageOptions


def build_analysis(resolved: ResolvedAnalysis, *, storage: StorageOptions,
                   threads: int | None = None, micro_batch: int = 64) -> Analysis:
    """The analysis object; a model analysis loads its model later, in setup()."""
    spec = resolved.spec
    kind = KINDS[spec.kind]
    batch = spec.resources.batch or min(micro_batch, kind.max_batch)
    return kind.build(resolved.name, spec, storage=storage, threads=threads,
                      micro_batch=batch)
