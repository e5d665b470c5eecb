"""Decode: turn a WorkUnit into frames (decord first, PyAV as fallback)."""
