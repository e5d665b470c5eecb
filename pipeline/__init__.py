"""vidlake: batch video analysis on Ray, results as Parquet tables.

Import stays light: torch, decord, av and ray are imported lazily by the
modules that need them, so `import pipeline` and `vidlake --help` are fast.
"""

__version__ = "0.1.0"
