"""Synthetic videos with known content (tests, demo, benchmark) and bad files."""
