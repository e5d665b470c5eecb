"""Relabel a corpus incrementally: meant to run on a schedule (nightly).

Usage:
    python -m jobs.relabel SOURCE --output LAKE [every `vidlake label` flag]
        [--dry-run] [--max-attempts N] [--retry-failed] [--lock-wait SECONDS]
    ray job submit --working-dir . -- python -m jobs.relabel SOURCE --output LAKE ...

Lists SOURCE and processes only what the lake lacks for the configured
analyses: new videos, videos whose content changed (size or etag), every
video for a new model version (into its own model_version partition), and
failed videos again until they have failed --max-attempts times (then they
are quarantined; --retry-failed tries them anyway). --dry-run prints what
would be processed and why, and changes nothing. Every run, even one with
nothing to do, adds a `runs` row. Afterwards, partitions that gathered
--compact-files small files are compacted.

Exit codes: 0 the run completed (even if some videos failed: see
`video_status`), 2 a systemic problem found before any work, 1 the run
failed part-way (a rerun continues from its last commit), 3 another run
holds the lake's lock.
"""

from __future__ import annotations

import argparse
import os
import sys

from jobs.label import EXIT_SYSTEMIC, interruptible, run_and_report
from jobs.logging_setup import configure
from pipeline.cli.label_options import add_label_arguments, label_config_from_args
from pipeline.cli.parser import OneLineParser
from pipeline.config import RunPolicy
from pipeline.errors import ConfigError, StorageError
from pipeline.values import integer


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or OneLineParser(prog="vidlake relabel", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    add_label_arguments(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be processed and why (new, changed, "
                             "new-version, retry, resume); change nothing")
    parser.add_argument("--max-attempts", type=integer(1, 1000), default=3,
                        help="failed videos are retried by later runs until they failed this "
                             "often, then quarantined (default 3)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="try failed and quarantined videos again now")
    parser.add_argument("--compact-files", type=integer(0, 1_000_000), default=32,
                        help="compact a partition after the run once it holds this many small "
                             "files (default 32; 0: never)")
    parser.add_argument("--compact-target-mb", type=integer(1, 1 << 20), default=128,
                        help="size of compacted files, MiB (default 128)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def policy_from_args(args: argparse.Namespace) -> RunPolicy:
    return RunPolicy(command="relabel", max_attempts=args.max_attempts,
                     retry_failed=args.retry_failed, record_idle=True,
                     compact_files=args.compact_files,
                     compact_target_mb=args.compact_target_mb)


def print_dry_run(args: argparse.Namespace) -> int:
    """Print the run's plan as the listing streams in: a line per video to do,
    then one per quarantined video, then the summary line."""
    from pipeline.runner.label_run import dry_run
    from pipeline.runner.work_plan import quarantined_line

    try:
        plan = dry_run(label_config_from_args(args, policy_from_args(args)), print)
        for item in plan.quarantined:
            print(quarantined_line(item))
        print(f"dry run: {plan.listed} videos listed: {plan.summary()}")
    except (ConfigError, StorageError) as exc:
        print(f"vidlake relabel: error: {exc}", file=sys.stderr)
        return EXIT_SYSTEMIC
    except BrokenPipeError:  # `--dry-run | head` read what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def run(args: argparse.Namespace) -> int:
    from pipeline.runner.label_run import run_label

    configure(args.verbose)
    if args.dry_run:
        return print_dry_run(args)
    return run_and_report("relabel", lambda: run_label(
        label_config_from_args(args, policy_from_args(args))))


def main(argv: list[str] | None = None) -> int:
    return interruptible("relabel", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
