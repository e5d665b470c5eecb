"""Compact a lake: merge each partition's small Parquet files into files of
about --target-mb, atomically, without changing any query result.

Usage:
    python -m jobs.compact LAKE [--target-mb 128] [--min-files 2] [--table NAME ...]

Takes the lake's lock (like label and relabel), finishes interrupted commits,
then merges. Exit codes: 0 done, 2 the lake cannot be read or written,
3 another run holds the lake's lock.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from jobs.label import exit_code_of, interruptible
from jobs.logging_setup import configure
from pipeline.cli.parser import OneLineParser, add_lock_wait, add_storage_option
from pipeline.errors import ConfigError
from pipeline.storage_options import StorageOptions
from pipeline.values import integer

if TYPE_CHECKING:
    from pipeline.lake.compaction import CompactionResult


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or OneLineParser(prog="vidlake compact", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lake", metavar="LAKE", help="lake root (local folder or s3://...)")
    parser.add_argument("--target-mb", type=integer(1, 1 << 20), default=128,
                        help="size of merged files, MiB (default 128); files under half of "
                             "it are small")
    parser.add_argument("--min-files", type=integer(2, 1_000_000), default=2,
                        help="compact a partition holding at least this many small files "
                             "(default 2)")
    parser.add_argument("--table", action="append",
                        help="only this table (repeatable; default: every table)")
    add_lock_wait(parser, "wait this long for another run's lock (default 0)")
    add_storage_option(parser)
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from pipeline.lake.compaction import compact_lake
    from pipeline.lake.lake_lock import LakeLock
    from pipeline.lake.parquet_lake import ParquetLake
    from pipeline.lake.schemas import all_tables
    from pipeline.runner.label_run import new_run_id

    configure(args.verbose)

    def compact() -> CompactionResult:
        if args.target_mb < 1 or args.min_files < 2:
            raise ConfigError("--target-mb must be positive and --min-files at least 2")
        known = sorted(all_tables())
        unknown = set(args.table or []) - set(known)
        if unknown:
            raise ConfigError(f"unknown table(s) {sorted(unknown)}; choose from {known}")
        storage = StorageOptions.parse(args.storage_option)
        lake = ParquetLake(args.lake, storage)
        lake.check_writable()
        with LakeLock(args.lake, storage, run_id=new_run_id(), purpose="compact",
                      wait_s=args.lock_wait) as lock:
            lake.recover()
            return compact_lake(lake, target_bytes=args.target_mb << 20,
                                min_files=args.min_files, tables=args.table,
                                before_commit=lock.check)

    def report(result: CompactionResult) -> str:
        # unreadable files were left alone; name each, so nobody takes exit 0 for "all fine"
        skipped = [f"skipped {rel}: cannot be read ({reason}); run vidlake check {args.lake}"
                   for rel, reason in sorted(result.skipped.items())]
        return "\n".join([*skipped, (
            f"compacted {result.partitions} partitions: {result.files_removed} files "
            f"({result.bytes_merged / 2**20:.1f} MiB) into {result.files_written}"
            + (f"; {len(skipped)} unreadable files skipped" if skipped else ""))])

    return exit_code_of("compact", compact, report)


def main(argv: list[str] | None = None) -> int:
    return interruptible("compact", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
