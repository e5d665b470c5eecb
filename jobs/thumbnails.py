"""Draw contact sheets of a lake's shots: one PNG per video, a row per shot.

Usage:
    python -m jobs.thumbnails LAKE --output DIR [--videos N] [--detector NAME] [--uri GLOB]

Reads each video's latest shots (the `latest_shots` view) and decodes the
first, middle and last frame of every shot with the project's decoder, local
or s3://. A row is the caption `shot k: start_s-end_s s (frames a-b)` (b the
shot's last frame) above the three thumbnails. DIR/<name>-<hash>.png per
video (the video's file name and 8 hex of its uri's hash); pages of at most
200 shots (<name>-<hash>_p2.png...). A video with shots from several
detectors gets a sheet per detector (<name>-<hash>.<detector>.png) unless
--detector picks one. One line per sheet written, per video that failed,
then a summary.

Exit codes: 0 every sheet written, 1 some videos failed (gone, undecodable;
their line says why, the other sheets are written), 2 a systemic problem (no
lake, no shots in it, bad flag, unreadable storage).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobs.label import EXIT_FAILED, EXIT_SYSTEMIC, interruptible
from jobs.logging_setup import configure
from pipeline.cli.parser import OneLineParser, add_storage_option
from pipeline.errors import ConfigError, StorageError, one_line
from pipeline.storage_options import StorageOptions
from pipeline.values import integer

if TYPE_CHECKING:  # the decoders load with the command, not with `vidlake --help`
    from pipeline.report.thumbnails import SheetOutcome, SheetRequest


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or OneLineParser(prog="vidlake thumbnails", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lake", metavar="LAKE", help="lake root (local folder or s3://...)")
    parser.add_argument("--output", required=True, metavar="DIR",
                        help="local folder for the PNGs (created if missing)")
    parser.add_argument("--videos", type=integer(1, 10**9), metavar="N",
                        help="only the first N videos by uri (default: all)")
    parser.add_argument("--detector", metavar="NAME",
                        help="only shots of this detector (`content`, `adaptive`...); default: "
                             "a sheet per detector")
    parser.add_argument("--uri", metavar="GLOB",
                        help="only videos whose uri matches, e.g. 's3://bucket/cam1/*'")
    parser.add_argument("--width", type=integer(80, 640), default=160, metavar="PX",
                        help="thumbnail width in pixels; the height keeps the video's aspect "
                             "(default 160)")
    add_storage_option(parser)
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@dataclass
class Tally:
    """What the run did: pages written, videos drawn, videos failed (uri, detector)."""

    pages: int = 0
    videos: set[tuple[str, str]] = field(default_factory=set)
    failed: set[tuple[str, str]] = field(default_factory=set)

    def add(self, outcome: SheetOutcome) -> str:
        """Count `outcome`; returns its line."""
        key = (outcome.uri, outcome.detector)
        self.videos.add(key)
        if outcome.error is not None:
            self.failed.add(key)
        if outcome.path is None:
            return f"failed {outcome.uri} ({outcome.detector}): {outcome.error}"
        self.pages += 1
        line = (f"wrote {outcome.path}: {outcome.uri} shots {outcome.first_shot}-"
                f"{outcome.last_shot} of {outcome.n_shots}")
        return line + (f" (some frames missing: {outcome.error})" if outcome.error else "")

    def summary(self, output: str) -> str:
        return (f"thumbnails: {self.pages} sheets written to {output} for "
                f"{len(self.videos) - len(self.failed)} videos, {len(self.failed)} failed")


def _request(args: argparse.Namespace) -> SheetRequest:
    from pipeline.report.thumbnails import SheetRequest

    return SheetRequest(output=args.output, videos=args.videos, detector=args.detector,
                        uri_glob=args.uri, thumb_width=args.width,
                        storage=StorageOptions.parse(args.storage_option))


def _open_shots(args: argparse.Namespace, request: SheetRequest) -> Iterable[SheetOutcome]:
    """The lake's views, checked to have shots; StorageError/ConfigError when not."""
    from pipeline.query.duckdb_views import open_lake, require_lake
    from pipeline.report.thumbnails import contact_sheets, prepare_output, require_shots

    require_lake(args.lake, request.storage)
    views = open_lake(args.lake, request.storage)
    for line in views.warnings():
        print(f"vidlake thumbnails: warning: {line}", file=sys.stderr)
    if why := views.why_missing("latest_shots"):
        raise StorageError(why)
    require_shots(views.con, args.lake)
    prepare_output(args.output)
    return contact_sheets(views.con, request)


def _no_videos(args: argparse.Namespace) -> str:
    picked = " ".join(f"{flag} {value}" for flag, value in
                      (("--detector", args.detector), ("--uri", args.uri)) if value)
    return (f"no latest shots match {picked}" if picked else
            f"lake {args.lake} has no latest shots: run `vidlake label --analysis shots` first")


def run(args: argparse.Namespace) -> int:
    """Write the sheets; exit 0, 1 when some videos failed, 2 (one line on
    stderr) for a systemic problem."""
    import duckdb

    configure(args.verbose)
    tally = Tally()
    try:
        request = _request(args)
        for outcome in _open_shots(args, request):
            print(tally.add(outcome), flush=True)
        if not tally.videos:
            raise ConfigError(_no_videos(args))
    except (ConfigError, StorageError, duckdb.Error) as exc:
        print(f"vidlake thumbnails: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_SYSTEMIC
    print(tally.summary(args.output))
    return EXIT_FAILED if tally.failed else 0


def main(argv: list[str] | None = None) -> int:
    return interruptible("thumbnails", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
