"""Seeing a run: stage metrics (the `run_stages` table, Ray's metrics
endpoint), the run's cost figures and its bottleneck verdict."""
