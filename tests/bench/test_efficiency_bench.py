"""bench.efficiency runs end to end with a tiny budget, prints its table and saves its
plots (not a timing test)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_efficiency_benchmark_prints_a_table_and_saves_plots(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench.efficiency", "--seeds", "1",
                             "--epoch-budget", "2", "--max-epochs", "2", "--grace-epochs", "1",
                             "--data", "digits", "--out", str(tmp_path),
                             "--arms", "tpe + asha"], cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Search efficiency: 2 epochs per search" in result.stdout
    assert "tpe + asha" in result.stdout  # ASHA with an epoch budget
    assert (tmp_path / "efficiency_digits.png").stat().st_size > 10_000
