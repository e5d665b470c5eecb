"""Tests of pipeline.evaluation and `vidlake evaluate`."""
