"""Open a DuckDB connection with one view per lake table, local or on S3.

DuckDB's httpfs extension cannot be downloaded offline, so S3 lakes are read
through the fsspec (s3fs) filesystem registered with DuckDB, and extension
auto-install is switched off so nothing reaches for the network.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import StorageError
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.storage import StorageOptions, filesystem, is_remote, storage_errors


def connect(lake_root: str, storage: StorageOptions | None = None) -> Any:
    """A DuckDB connection where each table of the lake is a view of the same name."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if is_remote(lake_root):
        con.register_filesystem(filesystem(lake_root, storage))
    lake = ParquetLake(lake_root, storage)
    try:
        tables = lake.tables()
    except storage_errors() as exc:
        raise StorageError(f"cannot read lake {lake_root!r}: {exc}") from None
    for table in tables:
        pattern = f"{lake.table_uri(table)}/**/*.parquet"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
                    f"'{pattern}', hive_partitioning = true, union_by_name = true)")
    return con
