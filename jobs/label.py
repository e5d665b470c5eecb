"""Label a video corpus into a Parquet lake.

Usage:
    python -m jobs.label SOURCE --output LAKE [--model NAME] [--weights URI] [--labels URI]
        [--sample uniform:N|fps:F|every:K|all] [--size N|WxH] [--embeddings] ...
    ray job submit --working-dir . -- python -m jobs.label SOURCE --output LAKE ...

Exit codes: 0 the run completed (even if some videos failed: see `videos`),
2 a systemic problem found before any work (bad flag, unreachable storage,
unwritable output, unknown model), 1 the run failed part-way (a rerun
continues from its last commit), 3 another run holds the lake's lock,
130 interrupted (Ctrl-C: what was committed stays; the same command continues).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from jobs.logging_setup import configure
from pipeline.cli.label_options import add_label_arguments, label_config_from_args
from pipeline.cli.parser import OneLineParser
from pipeline.errors import ConfigError, LakeBusy, RunFailed, RunInterrupted, StorageError
from pipeline.runner.label_run import RunSummary

EXIT_FAILED, EXIT_SYSTEMIC, EXIT_BUSY = 1, 2, 3
EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or OneLineParser(prog="vidlake label", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    add_label_arguments(parser)
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def format_summary(summary: RunSummary) -> str:
    c = summary.counts
    line = (f"run {summary.run_id} {summary.status}: {summary.videos} videos "
            f"({c.videos_ok} ok, {c.videos_failed} failed), {c.units} units "
            f"({summary.units_skipped} already done, {c.units_failed} failed), {c.frames} "
            f"frames in {summary.wall_s:.1f}s = {summary.frames_per_s:.1f} frames/s")
    if summary.plan is not None:
        line += f"\nplan: {summary.plan.summary()}"
    if summary.compacted:
        line += f"\ncompacted: {summary.compacted} small files merged"
    if summary.bottleneck:
        line += f"\nbottleneck: {summary.bottleneck}"
    if summary.cost is not None and summary.cost.video_hours > 0:
        line += f"\n{summary.cost.line()}"
    return line


T = TypeVar("T")


def exit_code_of(command: str, call: Callable[[], T], report: Callable[[T], str]) -> int:
    """Run `call`, print `report(result)`, and turn the errors of a lake command
    into its exit codes (printing what to fix)."""
    try:
        result = call()
    except (ConfigError, StorageError) as exc:
        print(f"vidlake {command}: error: {exc}", file=sys.stderr)
        return EXIT_SYSTEMIC
    except LakeBusy as exc:
        print(f"vidlake {command}: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except RunFailed as exc:
        print(f"vidlake {command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except RunInterrupted as exc:
        print(f"vidlake {command}: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(report(result))
    return 0


def interruptible(command: str, call: Callable[[], int]) -> int:
    """`call()`, or one line and exit 130 when the user presses Ctrl-C (a run
    in progress says what it committed: see exit_code_of)."""
    try:
        return call()
    except KeyboardInterrupt:
        print(f"vidlake {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_and_report(command: str, call: Callable[[], RunSummary]) -> int:
    """Run a labelling pass, print its summary, and map errors to exit codes."""
    return exit_code_of(command, call, format_summary)


def run(args: argparse.Namespace) -> int:
    from pipeline.runner.label_run import run_label

    configure(args.verbose)
    return run_and_report("label", lambda: run_label(label_config_from_args(args)))


def main(argv: list[str] | None = None) -> int:
    return interruptible("label", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
