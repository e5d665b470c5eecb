"""Plan: probe container metadata and split videos into bounded work units."""
