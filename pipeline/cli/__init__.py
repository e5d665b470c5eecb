"""Argument definitions shared by the `vidlake` CLI and the jobs/ entry points."""
