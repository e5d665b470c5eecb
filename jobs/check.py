"""Check a lake against its commit log; with --repair, retire what was lost so
that the next `vidlake relabel` redoes exactly that.

Usage:
    python -m jobs.check LAKE [--full] [--repair] [--lock-wait SECONDS]

Reports, one line each: damaged commit records, committed files that are
missing or cannot be read (footers; --full reads every page), merged files
holding rows of a damaged commit, and the videos whose rows each bad file
held; then a summary line. --repair takes the lake's lock, sets damaged
records and unreadable files aside under LAKE/_damaged/, retires the videos
and units whose rows were lost and drops their remaining rows, so a relabel
with the same analyses brings every row back exactly once.

Exit codes: 0 the lake is healthy (after --repair: repaired), 1 damage found
(and not repaired), 2 a systemic problem (no lake, unreachable storage, bad
flag), 3 another run holds the lake's lock (--repair).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from jobs.label import EXIT_FAILED, exit_code_of, interruptible
from jobs.logging_setup import configure
from pipeline.cli.parser import OneLineParser, add_lock_wait, add_storage_option
from pipeline.errors import ConfigError, StorageError
from pipeline.storage_options import StorageOptions

if TYPE_CHECKING:
    from pipeline.lake.lake_check import CheckReport
    from pipeline.lake.lake_repair import RepairResult
    from pipeline.lake.parquet_lake import ParquetLake


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or OneLineParser(prog="vidlake check", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lake", metavar="LAKE", help="lake root (local folder or s3://...)")
    parser.add_argument("--repair", action="store_true",
                        help="retire what was lost (takes the lake's lock); the next relabel "
                             "redoes it")
    parser.add_argument("--full", action="store_true",
                        help="read every page of every file, not only footers (reads the "
                             "whole lake)")
    add_lock_wait(parser, "with --repair: wait this long for another run's lock (default 0)")
    add_storage_option(parser)
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _open(args: argparse.Namespace) -> ParquetLake:
    """The lake, or ConfigError/StorageError (bad flag, no lake there)."""
    from pipeline.lake.parquet_lake import ParquetLake
    from pipeline.storage_problems import storage_errors

    if args.lock_wait and not args.repair:
        raise ConfigError("--lock-wait applies to --repair only (a check takes no lock)")
    lake = ParquetLake(args.lake, StorageOptions.parse(args.storage_option))
    try:
        absence = lake.absence()
    except storage_errors() as exc:
        raise StorageError(f"cannot read lake {args.lake!r}: {exc}") from None
    if absence:
        raise StorageError(f"no lake at {args.lake} ({absence})")
    return lake


def _check(args: argparse.Namespace) -> tuple[CheckReport, RepairResult | None, CheckReport]:
    """The check (before), the repair when asked, and the check after it."""
    from pipeline.lake.lake_check import check_lake
    from pipeline.lake.lake_lock import LakeLock
    from pipeline.lake.lake_repair import repair_lake
    from pipeline.runner.label_run import new_run_id

    lake = _open(args)
    before = check_lake(lake, full=args.full)
    if before.healthy or not args.repair:
        return before, None, before
    lake.check_writable()
    with LakeLock(args.lake, lake.storage, run_id=new_run_id(), purpose="check --repair",
                  wait_s=args.lock_wait) as lock:
        repaired = repair_lake(lake, full=args.full, before_commit=lock.check)
    return before, repaired, check_lake(lake, full=args.full)


def _report(outcome: tuple[CheckReport, RepairResult | None, CheckReport]) -> str:
    before, repaired, after = outcome
    lines = [problem.line() for problem in before.problems]
    if repaired is not None:
        lines += [repaired.summary(), *(p.line() for p in after.problems)]
    lines.append(after.summary())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    configure(args.verbose)
    healthy: list[bool] = []

    def check() -> tuple[CheckReport, RepairResult | None, CheckReport]:
        outcome = _check(args)
        healthy.append(outcome[2].healthy)
        return outcome

    code = exit_code_of("check", check, _report)
    return EXIT_FAILED if code == 0 and not healthy[0] else code


def main(argv: list[str] | None = None) -> int:
    return interruptible("check", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
