"""Runners: drive the stages sequentially (tests) or on Ray (ray_engine, the only
module that imports ray)."""
