"""Benchmarks: run by hand (``python -m bench.NAME``); they print tables, not verdicts."""
