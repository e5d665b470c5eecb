"""Thin entry points: each job is `python -m jobs.<name>` and `ray job submit`-able."""
