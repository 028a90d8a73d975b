"""bench.pareto runs end to end with a tiny budget and prints its table (not a timing
test)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_hypervolume_of_a_known_front():
    from bench.pareto import hypervolume

    # Two rectangles: 0.9 x (5 - 3) and 0.5 x (3 - 2); a dominated point adds nothing.
    assert hypervolume([(0.9, -3.0), (0.5, -2.0), (0.4, -4.0)], (0.0, -5.0)) == \
        pytest.approx(2.3)


@pytest.mark.slow
def test_pareto_benchmark_prints_a_table():
    result = subprocess.run([sys.executable, "-m", "bench.pareto", "--seeds", "1",
                             "--epoch-budget", "3", "--max-epochs", "2", "--grace-epochs", "1",
                             "--data-limit", "200", "--arms", "mo-asha", "asha"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| scheduler | hypervolume | front size | trials |" in result.stdout
    assert "per seed: mo-asha " in result.stdout
    assert "| mo-asha | " in result.stdout and "| asha | " in result.stdout
