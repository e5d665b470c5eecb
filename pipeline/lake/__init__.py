"""Lake: Parquet tables under LAKE/<table>/ with an exactly-once commit protocol."""

from pipeline.lake.parquet_lake import ParquetLake

__all__ = ["ParquetLake"]
