"""The process exit that skips the last garbage collection still does what an exit does."""

from __future__ import annotations

import subprocess
import sys

from search.memory import rss_mb
from tests.conftest import REPO


def test_rss_is_a_plausible_size():
    assert 5 < rss_mb() < 100_000


def test_a_quick_exit_keeps_its_status_atexit_handlers_and_buffered_output():
    code = ("import atexit; from search.memory import exit_after_heavy_imports; "
            "atexit.register(lambda: print('atexit ran')); print('buffered', end=' '); "
            "exit_after_heavy_imports(3)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 3
    assert result.stdout == "buffered atexit ran\n"
