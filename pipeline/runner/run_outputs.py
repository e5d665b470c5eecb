"""RunOutputs: the tables a run's analyses write, each under its analysis key.

One typed record per (analysis, table), made once from the resolved analyses
and read by the work plan, the planner, the ledger, the committer and the
`runs` row alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.analyses.resolve import ResolvedAnalysis
from pipeline.plan.planner import analysis_key


@dataclass(frozen=True)
class RunOutput:
    """One table one analysis of the run writes."""

    analysis: str  # the analysis's name in this run (its kind, or kind_2...)
    kind: str
    table: str
    key: str  # analysis_key: which version of these rows
    arch: str  # the model as the driver knows it ("content" for shots)
    version: str  # model_version


class RunOutputs:
    """Every RunOutput of a run, looked up by analysis and table."""

    def __init__(self, outputs: Iterable[RunOutput]) -> None:
        self._by_name: dict[str, dict[str, RunOutput]] = {}
        for output in outputs:
            self._by_name.setdefault(output.analysis, {})[output.table] = output

    @classmethod
    def of(cls, resolved: list[ResolvedAnalysis]) -> RunOutputs:
        return cls(RunOutput(r.name, r.spec.kind, table, analysis_key(r.spec, r.version, table),
                             r.arch, r.version)
                   for r in resolved for table in r.spec.outputs)

    def __iter__(self) -> Iterator[RunOutput]:
        return (o for tables in self._by_name.values() for o in tables.values())

    @property
    def analyses(self) -> list[str]:
        return list(self._by_name)

    def of_analysis(self, analysis: str) -> list[RunOutput]:
        return list(self._by_name[analysis].values())

    def key(self, analysis: str, table: str) -> str:
        """The analysis key of `table` as `analysis` writes it ("" when it does not:
        rows a video-level step adds under its analysis's own key)."""
        output = self._by_name[analysis].get(table)
        return output.key if output else ""

    def version(self, analysis: str) -> str:
        return next(iter(self._by_name[analysis].values())).version

    def kind(self, analysis: str) -> str:
        return next(iter(self._by_name[analysis].values())).kind
