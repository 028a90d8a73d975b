"""Temporary work folders that outlive no process for long.

A trial worker or a driver removes its own work folder when it ends, but a process
killed with SIGKILL (the OOM killer, ``kill -9``, a node losing power) never gets to.
So each folder comes with a lock file beside it (``<folder>.lock``) that its process
holds locked (``flock``) while the folder is in use: the kernel drops the lock when the
process dies, however it dies. The first folder a process makes of a kind comes with the
removal of that kind's folders from this machine whose lock nobody holds. A lock says
more than a process id would: it holds across PID namespaces (containers sharing a
temporary folder) and cannot be mistaken for a process that reused the id. The host's
name in the folder's name keeps machines that share a temporary folder over a network
file system (where a lock may be seen by its own machine only) out of each other's way.
Where locks cannot be taken at all, folders are made without one and never swept.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

_PREFIX = "convsearch-"
_LOCK_SUFFIX = ".lock"
#: The kinds whose orphans this process has removed already, and the lock around that.
_swept: set[str] = set()
_sweeping = threading.Lock()
#: The open, locked lock file of each folder this process made and has not removed.
_held: dict[Path, int] = {}


def name_prefix(kind: str, pid: int) -> str:
    """How the folders of `kind` made on this machine by process `pid` are named (then a
    random part). Host names hold no ``@``."""
    return f"{_machine_prefix(kind)}{pid}-"


def _machine_prefix(kind: str) -> str:
    """How the folders of `kind` made on this machine begin."""
    return f"{_PREFIX}{kind}@{socket.gethostname()}@"


def new_workdir(kind: str) -> Path:
    """A new, empty folder for this process's `kind` of work (``trial``,
    ``checkpoints``), after removing the orphaned ones of that kind (once per process).
    Give it back with `remove_workdir`."""
    with _sweeping:
        if kind not in _swept:
            remove_orphans(kind)
            _swept.add(kind)
    folder = Path(tempfile.mkdtemp(prefix=name_prefix(kind, os.getpid())))
    # Locked under a name no sweep looks at, then renamed: a sweep never finds the lock
    # file unlocked while its folder is in use.
    staging = Path(f"{folder}{_LOCK_SUFFIX}.new")
    descriptor = None
    try:
        descriptor = os.open(staging, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.replace(staging, f"{folder}{_LOCK_SUFFIX}")
    except OSError as exc:  # a file system without locks: the folder just stays unswept
        logger.debug("cannot lock work folder %s: %s", folder, exc)
        if descriptor is not None:
            os.close(descriptor)
        staging.unlink(missing_ok=True)
        return folder
    _held[folder] = descriptor
    return folder


def remove_workdir(folder: Path) -> None:
    """Remove a folder `new_workdir` made, and its lock."""
    try:
        shutil.rmtree(folder, ignore_errors=True)
        Path(f"{folder}{_LOCK_SUFFIX}").unlink(missing_ok=True)
    finally:
        descriptor = _held.pop(folder, None)
        if descriptor is not None:
            os.close(descriptor)


def remove_orphans(kind: str) -> list[Path]:
    """Remove this machine's `kind` folders whose lock no process holds; returns them.
    Never raises: a folder it cannot judge or remove stays."""
    removed = []
    for lock in Path(tempfile.gettempdir()).glob(f"{_machine_prefix(kind)}*{_LOCK_SUFFIX}"):
        folder = Path(str(lock)[:-len(_LOCK_SUFFIX)])
        try:
            # Never blocks (a FIFO planted under that name) or follows a link.
            descriptor = os.open(lock, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            continue  # removed meanwhile, or not ours to open
        try:
            info = os.fstat(descriptor)
            free = stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
            if free:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            free = False  # in use
        if not free:
            os.close(descriptor)
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)
            if not folder.exists():
                removed.append(folder)
        except OSError as exc:
            logger.debug("cannot remove the orphaned work folder %s: %s", folder, exc)
        finally:
            os.close(descriptor)
    return removed
