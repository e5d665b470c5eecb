"""Write one self-contained HTML report of a run (inline images, opens from disk).

Usage:
    python -m jobs.report LAKE --output report.html [--run RUN_ID] [--videos N]
        [--training-dir DIR] [--storage-option KEY=VALUE ...]

Sections: the run's summary (status, counts, durations, frames/s, the
bottleneck verdict, video-hours against CPU- and GPU-hours, the resolved
config's analyses); totals per stage and a stage timeline (utilisation and
frames/s per stage over time, when the lake has a `run_stages` table) and
throughput over time (from the commit times in `status_log`); failures by
reason with example uris; label distribution per model version
(frame_labels, clip_labels); shots as thumbnail strips and detections drawn
on their frames for the first N videos; training curves (training_metrics in
the lake or --training-dir) and the confusion matrix (the lake's evaluation
tables) when present. Default run: the newest. A run recorded before stage
metrics existed says "not recorded" for the verdict and the cost figures.

Exit codes: 0 written (videos that cannot be decoded are shown in the report),
2 a systemic problem (no lake, no runs, unknown --run, output not writable).
"""

from __future__ import annotations

import argparse
import sys

from jobs.label import EXIT_SYSTEMIC, interruptible
from jobs.logging_setup import configure
from pipeline.cli.parser import OneLineParser, add_storage_option
from pipeline.errors import ConfigError, StorageError, one_line
from pipeline.storage_options import StorageOptions
from pipeline.values import integer


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or OneLineParser(prog="vidlake report", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lake", metavar="LAKE", help="lake root (local folder or s3://...)")
    parser.add_argument("--output", required=True, metavar="FILE",
                        help="the local .html file to write (its folder must exist)")
    parser.add_argument("--run", metavar="RUN_ID", help="the run to report (default: the "
                        "newest in `runs`)")
    parser.add_argument("--videos", type=integer(0, 50), default=6, metavar="N",
                        help="videos sampled for the shots and detections pictures "
                             "(default 6, at most 50)")
    parser.add_argument("--training-dir", metavar="DIR",
                        help="a `vidlake train` output whose training_metrics to plot "
                             "(default: the lake's own, if any)")
    add_storage_option(parser)
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Write the report; exit 0, or 2 (one line on stderr) for a systemic problem."""
    import duckdb

    from pipeline.report.html_report import ReportRequest, write_report

    configure(args.verbose)
    try:
        request = ReportRequest(lake=args.lake, output=args.output, run_id=args.run,
                                videos=args.videos, training_dir=args.training_dir,
                                storage=StorageOptions.parse(args.storage_option))
        run_id = write_report(request)
    except (ConfigError, StorageError, duckdb.Error) as exc:
        print(f"vidlake report: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_SYSTEMIC
    print(f"wrote {args.output}: report of run {run_id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return interruptible("report", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
