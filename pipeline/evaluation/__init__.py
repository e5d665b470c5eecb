"""Evaluate a lake's predicted labels against a ground-truth manifest."""
