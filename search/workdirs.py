"""Temporary work folders that outlive no process for long.

A trial worker or a driver removes its own work folder when it ends, but a process
killed with SIGKILL (the OOM killer, ``kill -9``, a node losing power) never gets to.
So each folder is named after the machine and the process that made it
(``convsearch-<kind>-<host>-<pid>-...`` in the system's temporary folder), and the first
folder a process makes of a kind comes with the removal of those of that kind whose
process is gone from this machine. The host name keeps machines (or containers) that
share a temporary folder from judging each other's processes.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

_PREFIX = "convsearch-"
#: The kinds whose orphans this process has removed already.
_swept: set[str] = set()


def new_workdir(kind: str) -> Path:
    """A new, empty folder for this process's `kind` of work (``trial``,
    ``checkpoints``), after removing the orphaned ones of that kind (once per process)."""
    host = socket.gethostname()
    if kind not in _swept:
        remove_orphans(kind, host)
        _swept.add(kind)
    return Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{kind}-{host}-{os.getpid()}-"))


def remove_orphans(kind: str, host: str) -> list[Path]:
    """Remove the `kind` folders made on `host` by processes that are no longer running;
    returns them."""
    start = f"{_PREFIX}{kind}-{host}-"
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{start}*"):
        pid = folder.name[len(start):].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    """Whether `pid` is a live process here (a zombie, dead but not yet reaped by its
    parent, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: os.kill's answer stands
    return stat[stat.rindex(")") + 2:][:1] != "Z"
