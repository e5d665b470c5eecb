"""The report tests' shared lake: labelled, evaluated and reported once for
the package (tests/report/report_lake.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.report_lake import build_lake


@pytest.fixture(scope="package")
def lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`lake`, `html` (the report of its run), `root` and `training` paths;
    tests copy the lake before changing it."""
    return build_lake(tmp_path_factory.mktemp("report"))
