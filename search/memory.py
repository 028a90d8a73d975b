"""The resident memory of this process, which trials report so a search can show (and
a worker can act on) memory that grows from trial to trial."""

from __future__ import annotations

import os
import resource
import sys


def rss_mb() -> float:
    """Resident set size of this process now, in MB (peak size where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB; bytes on macOS
        return peak / (2**20 if sys.platform == "darwin" else 2**10)
