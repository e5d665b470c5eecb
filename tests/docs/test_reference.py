"""docs/cli.md and docs/analyses.md say what the parsers and the analyses'
declarations say; every flag and option is in them; links resolve."""

from __future__ import annotations

import re

from jobs import reference
from jobs.cli import COMMANDS
from pipeline.analyses.kinds import KINDS
from pipeline.analyses.spec_options import run_wide_options
from tests.procs import REPO_ROOT


def test_generated_pages_are_up_to_date():
    for name, make in reference.PAGES.items():
        on_disk = (REPO_ROOT / "docs" / name).read_text()
        assert on_disk == make(), f"docs/{name} is stale: run python -m jobs.reference"


def test_every_command_flag_and_option_is_documented():
    cli, analyses = reference.cli_markdown(), reference.analyses_markdown()
    for name in COMMANDS:
        assert f"## vidlake {name}" in cli
    for info, _ in run_wide_options().values():
        assert f"`{info.flag}`" in cli and f"`{info.flag}`" in analyses
    for kind in KINDS.values():
        section = analyses.split(f"## {kind.name}\n", 1)[1].split("\n## ", 1)[0]
        for option in kind.option_table():
            assert f"| `{option}` |" in section, (kind.name, option)


def test_relative_links_in_readme_and_docs_resolve():
    pages = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert broken == []
