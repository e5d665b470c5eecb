"""The `vidlake` command: one subcommand per job in jobs/.

    vidlake label SOURCE --output LAKE [--model NAME] [--weights URI] ...
    vidlake query LAKE "SQL"
    vidlake train SOURCE --output DIR --model NAME [--epochs N] [--num-workers N] ...
    vidlake evaluate LAKE --truth MANIFEST
    vidlake relabel SOURCE --output LAKE [label's flags] [--dry-run] [--max-attempts N] ...
    vidlake compact LAKE [--target-mb 128]
    vidlake check LAKE [--repair] [--full]
    vidlake thumbnails LAKE --output DIR [--videos N]
    vidlake report LAKE --output report.html [--run RUN_ID] [--videos N]
"""

from __future__ import annotations

import argparse
import sys

from jobs import check, compact, evaluate, label, query, relabel, report, thumbnails, train
from jobs.label import interruptible
from pipeline.cli.parser import OneLineParser

COMMANDS = {"label": label, "relabel": relabel, "query": query, "compact": compact,
            "check": check, "train": train, "evaluate": evaluate, "thumbnails": thumbnails,
            "report": report}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="vidlake", description=__doc__,
                           formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.build_parser(sub.add_parser(name, help=(module.__doc__ or "").splitlines()[0],
                                           description=module.__doc__,
                                           formatter_class=argparse.RawTextHelpFormatter))
    args = parser.parse_args(argv)
    return interruptible(args.command, lambda: int(COMMANDS[args.command].run(args)))


if __name__ == "__main__":
    sys.exit(main())
