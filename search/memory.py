"""The resident memory of this process, which trials report so a search can show (and
a worker can act on) memory that grows from trial to trial; and a process exit that does
not walk it all once more."""

from __future__ import annotations

import gc
import os
import resource
import sys
from typing import NoReturn


def rss_mb() -> float:
    """Resident set size of this process now, in MB (peak size where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB; bytes on macOS
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


def exit_after_heavy_imports(status: int) -> NoReturn:
    """Exit with `status`, skipping the interpreter's last garbage collection.

    With TensorFlow, Ray and MLflow loaded, that collection walks millions of objects that
    are about to be freed with the process anyway: about a second of every command's end
    on two CPUs. Freezing them first skips only that walk; atexit handlers, log handlers
    and stream flushes run as in any exit.
    """
    gc.freeze()
    sys.exit(status)
