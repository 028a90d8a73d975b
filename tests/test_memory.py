"""This process's memory as measured, and the process exit that skips the last garbage
collection still doing what an exit does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search.memory import rss_mb
from tests.conftest import REPO


@pytest.mark.skipif(not Path("/proc/self/statm").is_file(),
                    reason="elsewhere rss_mb is the peak size, which never drops")
def test_rss_follows_what_the_process_holds():
    before = rss_mb()
    held = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MB, every page written
    grown = rss_mb() - before
    assert 190 < grown < 230, grown
    del held
    assert rss_mb() < before + 50  # numpy returns a block this big to the system


def test_a_quick_exit_keeps_its_status_atexit_handlers_and_buffered_output():
    code = ("import atexit; from search.memory import exit_after_heavy_imports; "
            "atexit.register(lambda: print('atexit ran')); print('buffered', end=' '); "
            "exit_after_heavy_imports(3)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 3
    assert result.stdout == "buffered atexit ran\n"
