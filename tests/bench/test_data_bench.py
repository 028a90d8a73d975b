"""bench.data runs end to end on a tiny folder and prints its table (not a timing test)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_data_benchmark_prints_its_table(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench.data", "--images", "200", "--size",
                             "8"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Getting data to trials" in result.stdout
    assert "folder of 200 PNGs" in result.stdout and "digits" in result.stdout
