"""Runs a search's trials on Ray Tune. The only package that imports Ray."""

from search.engine.tuner import plan_resources, run_search

__all__ = ["plan_resources", "run_search"]
