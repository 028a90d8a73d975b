"""A search's folder in Ray Tune's storage (``<storage>/<search name>/``): where Tune keeps
the experiment's state and checkpoints, where the search's request is recorded so that
``--resume NAME`` needs nothing else, and what keeps two drivers from running one search.

The lock is an advisory `flock` on a file in that folder, so it is released by the
kernel when its driver dies, however it dies (a kill -9 leaves no stale lock). On
storage that is a URI (``s3://``), the lock file lives in this machine's temporary
folder instead: it then guards against a second driver on the same machine only.
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import json
import os
import pwd
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.fs

from search.errors import SettingsError
from search.settings import SearchSettings

#: The recorded request of a search, in its folder.
REQUEST_FILE = "convsearch-request.json"
#: Written when a search ended with its model registered: the trial budget it finished.
FINISHED_FILE = "convsearch-finished.json"
_LOCK_FILE = ".convsearch-driver.lock"


def storage_uri(storage: Path | str) -> str:
    """Tune's storage path: a URI as given, a local folder made absolute."""
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


def experiment_path(settings: SearchSettings) -> str:
    """Where Tune keeps this search: ``<storage>/<name>``."""
    return _path(settings.name, settings.storage)


def _path(name: str, storage: Path | str) -> str:
    return f"{storage_uri(storage).rstrip('/')}/{name}"


def has_request(settings: SearchSettings) -> bool:
    """Whether a search of this name was started in this storage."""
    filesystem, path = _filesystem(settings.name, settings.storage)
    info = filesystem.get_file_info(f"{path}/{REQUEST_FILE}")
    return info.type == pyarrow.fs.FileType.File


def write_request(settings: SearchSettings, request: dict[str, Any]) -> None:
    """Record what the search was asked to do, before it starts."""
    filesystem, path = _filesystem(settings.name, settings.storage)
    filesystem.create_dir(path, recursive=True)
    temporary = f"{path}/.{REQUEST_FILE}.tmp"
    with filesystem.open_output_stream(temporary) as stream:
        stream.write(json.dumps(request, indent=2, sort_keys=True).encode())
    filesystem.move(temporary, f"{path}/{REQUEST_FILE}")


def read_request(name: str, storage: Path | str) -> dict[str, Any]:
    """The recorded request of the search `name` in `storage`, to resume it.

    Raises:
        SettingsError: no search of that name was started there, or its local folder is
            writable by others.
    """
    filesystem, path = _filesystem(name, storage)
    if "://" not in path:
        _require_writable_by_owner_only(Path(path))
    try:
        with filesystem.open_input_stream(f"{path}/{REQUEST_FILE}") as stream:
            return json.loads(stream.read().decode())
    except (FileNotFoundError, OSError) as exc:
        known = _known_searches(name, storage)
        hint = f" (searches there: {', '.join(known)})" if known else ""
        raise SettingsError(f"no search named {name!r} in {storage_uri(storage)}{hint}; "
                            "give the --storage it ran with") from exc
    except ValueError as exc:
        raise SettingsError(f"the record of search {name!r} is unreadable: {exc}") from exc


def _require_writable_by_owner_only(folder: Path) -> None:
    """Refuse a search folder that others may write to, or whose storage folder they may
    write to: resuming unpickles the searcher's and Tune's state from it, so whoever can
    write there can run code as this driver.

    Raises:
        SettingsError: the folder or its storage folder belongs to another user, or others
            may write to it.
    """
    for path in (folder, folder.parent):
        try:
            info = path.stat()
        except OSError:
            continue  # not there: read_request says so
        if path == folder.parent and info.st_mode & stat.S_ISVTX:
            continue  # /tmp-like: others may add folders there, not replace this one
        if info.st_uid not in (os.geteuid(), 0) or _others_may_write(info):
            raise SettingsError(f"{path} is writable by others, and resuming a search runs "
                                "what its folder holds (Tune's and the searcher's pickled "
                                f"state); make it yours alone (chmod go-w {path})")


def _others_may_write(info: os.stat_result) -> bool:
    """World-writable, or group-writable for a group with anyone but the owner in it (a
    user-private group, which a umask of 002 leaves writable, holds the owner alone)."""
    if info.st_mode & stat.S_IWOTH:
        return True
    if not info.st_mode & stat.S_IWGRP:
        return False
    try:
        owner = pwd.getpwuid(info.st_uid)
        group = grp.getgrgid(info.st_gid)
    except KeyError:
        return True
    if owner.pw_gid != info.st_gid or set(group.gr_mem) - {owner.pw_name}:
        return True
    return any(user.pw_gid == info.st_gid and user.pw_uid != info.st_uid
               for user in pwd.getpwall())


def mark_finished(settings: SearchSettings) -> None:
    """Record that the search finished its trial budget (`finished_budget` reads it)."""
    filesystem, path = _filesystem(settings.name, settings.storage)
    with filesystem.open_output_stream(f"{path}/{FINISHED_FILE}") as stream:
        stream.write(json.dumps({"trials": settings.trials}).encode())


def finished_budget(settings: SearchSettings) -> int | None:
    """The trial budget the search finished last time, or None if it never finished."""
    filesystem, path = _filesystem(settings.name, settings.storage)
    try:
        with filesystem.open_input_stream(f"{path}/{FINISHED_FILE}") as stream:
            return int(json.loads(stream.read().decode())["trials"])
    except (FileNotFoundError, OSError, ValueError, KeyError, TypeError):
        return None


def saved_trial_count(settings: SearchSettings) -> int:
    """How many trials the newest experiment snapshot of Tune holds (0 if none)."""
    filesystem, states = _experiment_states(settings)
    if not states:
        return 0
    try:
        with filesystem.open_input_stream(states[-1]) as stream:
            return len(json.loads(stream.read().decode()).get("trial_data", []))
    except (OSError, ValueError):
        return 0


def has_experiment_state(settings: SearchSettings) -> bool:
    """Whether Tune saved this search's state (it ran at least until its first snapshot)."""
    return bool(_experiment_states(settings)[1])


def _experiment_states(settings: SearchSettings) -> tuple[pyarrow.fs.FileSystem, list[str]]:
    """Tune's experiment snapshots of this search, oldest first (their names sort by time)."""
    filesystem, path = _filesystem(settings.name, settings.storage)
    selector = pyarrow.fs.FileSelector(path, allow_not_found=True)
    return filesystem, sorted(info.path for info in filesystem.get_file_info(selector)
                              if Path(info.path).name.startswith("experiment_state"))


@contextmanager
def driver_lock(settings: SearchSettings) -> Iterator[None]:
    """Hold the search's lock for the block: one driver per search at a time.

    Raises:
        SettingsError: another driver holds it.
    """
    uri = storage_uri(settings.storage)
    if "://" in uri:
        digest = hashlib.sha256(experiment_path(settings).encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"convsearch-{digest}.lock"
    else:
        path = Path(uri) / settings.name / _LOCK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            file.seek(0)
            holder = file.read().strip() or "another process"
            raise SettingsError(f"search {settings.name!r} is being run by {holder}; wait "
                                "for it to end or stop it first") from exc
        file.seek(0)
        file.truncate()
        file.write(f"driver pid {os.getpid()} on {socket.gethostname()}")
        file.flush()
        try:
            yield
        finally:
            file.seek(0)
            file.truncate()
            fcntl.flock(file, fcntl.LOCK_UN)


def _filesystem(name: str, storage: Path | str) -> tuple[pyarrow.fs.FileSystem, str]:
    uri = _path(name, storage)
    if "://" not in uri:
        return pyarrow.fs.LocalFileSystem(), uri
    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, OSError) as exc:
        raise SettingsError(f"--storage {storage}: {exc}") from exc


def _known_searches(name: str, storage: Path | str) -> list[str]:
    filesystem, path = _filesystem(name, storage)
    parent = path.rsplit("/", 1)[0]
    try:
        entries = filesystem.get_file_info(pyarrow.fs.FileSelector(parent, allow_not_found=True))
    except OSError:
        return []
    return sorted(Path(e.path).name for e in entries if e.type == pyarrow.fs.FileType.Directory
                  and filesystem.get_file_info(f"{e.path}/{REQUEST_FILE}").type
                  == pyarrow.fs.FileType.File)
