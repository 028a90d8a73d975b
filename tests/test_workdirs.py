"""Work folders of killed processes are removed by the next process on the machine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from search import workdirs


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(workdirs, "_swept", set())
    return tmp_path


def finished_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_new_workdir_removes_those_of_processes_that_are_gone(temp_root):
    host = socket.gethostname()
    dead = temp_root / f"convsearch-trial-{host}-{finished_pid()}-abc"
    alive = temp_root / f"convsearch-trial-{host}-{os.getppid()}-def"
    other_host = temp_root / f"convsearch-trial-elsewhere-{finished_pid()}-ghi"
    other_kind = temp_root / f"convsearch-checkpoints-{host}-{finished_pid()}-jkl"
    for folder in (dead, alive, other_host, other_kind):
        (folder / "model.keras").parent.mkdir()
        (folder / "model.keras").write_bytes(b"x")

    made = workdirs.new_workdir("trial")

    assert made.is_dir() and made.name.startswith(f"convsearch-trial-{host}-{os.getpid()}-")
    assert sorted(p.name for p in temp_root.iterdir()) == sorted(
        [made.name, alive.name, other_host.name, other_kind.name])
    # Once per process and kind: later folders do not scan again.
    dead.mkdir()
    workdirs.new_workdir("trial")
    assert dead.is_dir()


def test_a_zombie_counts_as_gone(temp_root):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{process.pid}/stat")
        deadline = time.monotonic() + 30
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.05)
        folder = temp_root / f"convsearch-trial-{socket.gethostname()}-{process.pid}-x"
        folder.mkdir()
        assert workdirs.remove_orphans("trial", socket.gethostname()) == [folder]
    finally:
        process.wait()
