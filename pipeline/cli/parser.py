"""The argparse parser every vidlake command uses."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit 2 (no
    usage dump: `vidlake label` has fifty flags)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    """`--storage-option KEY=VALUE`, repeatable (parsed by StorageOptions.parse)."""
    parser.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                        help="object-storage option (endpoint_url, key, secret, region_name, "
                             "anon...); repeatable; overrides the AWS_* environment")


def add_lock_wait(parser: argparse.ArgumentParser, help: str) -> None:
    """`--lock-wait SECONDS`: how long to wait for another run's lock on the lake."""
    from pipeline.values import seconds

    parser.add_argument("--lock-wait", type=seconds, default=0.0, metavar="SECONDS", help=help)
