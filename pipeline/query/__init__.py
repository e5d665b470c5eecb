"""Query: DuckDB views over the lake's tables."""
