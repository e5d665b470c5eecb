"""Every file of the conformance matrix reads exactly as routed (what `vidlake
label` does): sparse and sequential reads return the frames, indices and
times of a forward PyAV decode; docs/decoders.md lists the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert len(reference[0]) == N_FRAMES
    for indices in (SPARSE, tuple(range(N_FRAMES))):
        assert verdict(path, indices, reference, decoder_shown=False) == "exact", indices


def test_the_documented_table_covers_the_matrix():
    table = (REPO_ROOT / "docs" / "decoders.md").read_text()
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ")][1:]
    assert [r[0].lstrip("| ") for r in rows] == [c.name for c in CASES]
    assert all(r[3].startswith("exact") and r[4].startswith("exact") for r in rows)
