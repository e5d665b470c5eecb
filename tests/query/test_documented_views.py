"""docs/tables.md's copy of the derived views' SQL is the SQL `vidlake query` runs."""

from __future__ import annotations

import re

from pipeline.query.duckdb_views import (
    ASKED_FROM_RUNS,
    LATEST_ROWS,
    LATEST_VIDEOS,
    VIDEO_STATUS,
)
from tests.procs import REPO_ROOT


def _words(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def test_tables_doc_shows_the_sql_of_every_derived_view():
    readme = _words((REPO_ROOT / "docs" / "tables.md").read_text())
    latest = LATEST_ROWS.format(table="frame_labels", asked=ASKED_FROM_RUNS)
    for sql in (VIDEO_STATUS, LATEST_VIDEOS, latest):
        assert _words(sql) in readme, sql
