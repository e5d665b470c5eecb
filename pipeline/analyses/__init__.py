"""Analyses: models that turn decoded frames into table rows."""
