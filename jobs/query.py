"""Run SQL over a lake with DuckDB; each table is a view of the same name.

Usage:
    python -m jobs.query LAKE "SELECT label, count(*) FROM frame_labels GROUP BY 1"
"""

from __future__ import annotations

import argparse
import sys

from pipeline.errors import ConfigError, StorageError
from pipeline.storage import StorageOptions


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="vidlake query", description=__doc__,
                                               formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lake", metavar="LAKE", help="lake root (local folder or s3://...)")
    parser.add_argument("sql", metavar="SQL", help="the query; tables are views by name")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table",
                        help="output format (default: table)")
    parser.add_argument("--max-rows", type=int, default=100,
                        help="rows shown in table format (default 100)")
    parser.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                        help="object-storage option; repeatable")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def run(args: argparse.Namespace) -> int:
    import duckdb

    from pipeline.query.duckdb_views import connect

    try:
        con = connect(args.lake, StorageOptions.parse(args.storage_option))
        relation = con.sql(args.sql)
        if relation is None:
            return 0
        if args.format == "table":
            relation.show(max_rows=args.max_rows, max_width=200)
        else:
            result = relation.arrow()  # a RecordBatchReader in DuckDB >= 1.4
            frame = result.read_all() if hasattr(result, "read_all") else result
            import pyarrow.csv as pacsv

            if args.format == "csv":
                pacsv.write_csv(frame, sys.stdout.buffer)
            else:
                import json

                for row in frame.to_pylist():
                    print(json.dumps(row, default=str))
    except (ConfigError, StorageError, duckdb.Error) as exc:
        print(f"vidlake query: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
