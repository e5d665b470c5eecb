"""docs/tables.md documents every table and every column of the contract."""

from __future__ import annotations

import re

import pytest

from pipeline.lake.schemas import all_tables, row_tables
from tests.procs import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "tables.md").read_text()
# the version columns every row table carries are described once, up front
SHARED = DOC[DOC.index("## Files and version columns") : DOC.index("## The tables")]


def section(table: str) -> str:
    """The text from the table's bold heading to the next table's."""
    start = DOC.index(f"**{table}**")
    after = re.search(r"^\*\*\w+\*\*", DOC[start + 2:], re.M)
    return DOC[start : start + 2 + after.start()] if after else DOC[start:]


@pytest.mark.parametrize("table", sorted(all_tables()))
def test_every_column_is_documented_with_its_table(table: str):
    assert f"**{table}**" in DOC, f"docs/tables.md has no section for {table}"
    text = section(table)
    words = set(re.findall(r"[a-z_0-9]+", text + (SHARED if table in row_tables() else "")))
    missing = [f.name for f in all_tables()[table] if f.name not in words]
    assert not missing, f"{table}: columns docs/tables.md does not name: {missing}"
