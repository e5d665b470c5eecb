"""Every file of the conformance matrix reads exactly as routed (what `vidlake
label` does): sparse and sequential reads return the frames, indices and
times of a forward PyAV decode; docs/decoders.md lists the same files, and
bears out every routing rule that cites them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.decode.containers import ROUTES, Route
from tests.decode.conformance.matrix import (
    CASES,
    N_FRAMES,
    SPARSE,
    Case,
    forward_decode,
    verdict,
    write_case,
)
from tests.procs import REPO_ROOT


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_routed_reads_are_exact(case: Case, tmp_path: Path):
    path = write_case(case, tmp_path)
    reference = forward_decode(path)
    assert len(reference.frames) == N_FRAMES
    for indices in (SPARSE, tuple(range(N_FRAMES))):
        assert verdict(path, indices, reference, decoder_shown=False) == "exact", indices


def _documented() -> dict[str, dict[str, str]]:
    """docs/decoders.md's matrix: file name -> column -> verdict, in table order."""
    lines = (REPO_ROOT / "docs" / "decoders.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| file |"))
    columns = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("| "):
            break
        cells = dict(zip(columns, (c.strip() for c in line.strip("|").split("|")), strict=True))
        rows[cells["file"]] = cells
    return rows


def test_the_documented_table_covers_the_matrix():
    rows = _documented()
    assert list(rows) == [c.name for c in CASES]
    assert all(r["routed sparse"].startswith("exact") and
               r["routed sequential"].startswith("exact") and
               r["keyframes"].startswith("exact") for r in rows.values())


def _by(row: dict[str, str], path: str) -> set[str]:
    return {row[f"{path} sparse"], row[f"{path} sequential"]}


@pytest.mark.parametrize("route", ROUTES, ids=[r.reason for r in ROUTES])
def test_each_route_is_borne_out_by_the_rows_it_cites(route: Route):
    """A rule for decord cites rows routed to decord, exact; a rule for PyAV
    cites rows routed to PyAV, one of them read wrongly (or not by itself) by
    forced decord unless the rule is a precaution. When a decord upgrade
    makes this fail, the table has changed: change the rule to match it."""
    rows = _documented()
    assert route.rows or route.precaution, "a measured rule cites its rows"
    assert set(route.rows) <= rows.keys(), set(route.rows) - rows.keys()
    cited = [rows[name] for name in route.rows]
    routed = {verdict for row in cited for verdict in _by(row, "routed")}
    if route.decoder == "decord":
        assert routed == {"exact (decord)"}, routed
        return
    assert routed <= {"exact (pyav)"}, routed  # no rows: a precaution for what is not measured
    if not route.precaution:
        assert any(_by(row, "decord") != {"exact (decord)"} for row in cited), \
            f"forced decord was exact on every row {route.reason!r} cites"
