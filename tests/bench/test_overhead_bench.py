"""bench.overhead runs end to end with a tiny budget and prints its tables (not timed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_overhead_benchmark_prints_its_tables():
    result = subprocess.run([sys.executable, "-m", "bench.overhead", "--trials", "1",
                             "--epochs", "1"], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ratio (b)/(a): " in result.stdout and "(b1)/(a*): " in result.stdout
    for row in ("(a) bare model.fit", "(a*) bare model.fit", "(a') product trainer",
                "(a'') product trainer", "(b1) full search", "(b2) full search",
                "search start-up", "inside tune.report", "writing checkpoints",
                "after the trials, once per search"):
        assert row in result.stdout, row
