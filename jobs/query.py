"""Run SQL over a lake with DuckDB; each table is a view of the same name.

Usage:
    python -m jobs.query LAKE "SELECT label, count(*) FROM frame_labels GROUP BY 1"
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from jobs.label import interruptible
from pipeline.cli.parser import OneLineParser, add_storage_option
from pipeline.errors import ConfigError, StorageError
from pipeline.storage_options import StorageOptions
from pipeline.values import integer


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or OneLineParser(prog="vidlake query", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lake", metavar="LAKE", help="lake root (local folder or s3://...)")
    parser.add_argument("sql", metavar="SQL", help="the query; tables are views by name")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table",
                        help="output format (default: table)")
    parser.add_argument("--max-rows", type=integer(1, 10**9), default=100,
                        help="rows shown in table format (default 100)")
    add_storage_option(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Run the query; exit 0, or 2 with one line on stderr saying what is wrong
    (no lake, bad SQL, a table that damage left out). Tables and commit records
    that cannot be read are named on stderr, one line each, and the query runs
    over the rest."""
    import duckdb

    from pipeline.errors import one_line
    from pipeline.lake.schemas import all_tables
    from pipeline.query.duckdb_views import LakeViews, open_lake, require_lake

    views: LakeViews | None = None
    try:
        storage = StorageOptions.parse(args.storage_option)
        require_lake(args.lake, storage)
        views = open_lake(args.lake, storage)
        for line in views.warnings():
            print(f"vidlake query: warning: {line}", file=sys.stderr)
        relation = views.con.sql(args.sql)
        if relation is not None:
            _write(relation, args)
    except duckdb.CatalogException as exc:
        missing = re.search(r"with name (\S+) does not exist", str(exc))
        name = missing.group(1) if missing else ""
        why = views.why_missing(name) if views is not None and name else None
        if why is None and name in all_tables():  # not DuckDB's "Did you mean pg_views?"
            why = f"lake {args.lake} has no {name} table yet (no files)"
        print(f"vidlake query: error: {why or one_line(str(exc))}", file=sys.stderr)
        return 2
    except (ConfigError, StorageError, duckdb.Error) as exc:
        print(f"vidlake query: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    return 0


def _write(relation: Any, args: argparse.Namespace) -> None:
    """Print a query's result in the chosen format."""
    if args.format == "table":
        relation.show(max_rows=args.max_rows, max_width=200)
        return
    result = relation.arrow()  # a RecordBatchReader in DuckDB >= 1.4
    frame = result.read_all() if hasattr(result, "read_all") else result
    if args.format == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(frame, sys.stdout.buffer)
        return
    for row in frame.to_pylist():
        print(json.dumps(row, default=str))


def main(argv: list[str] | None = None) -> int:
    return interruptible("query", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
