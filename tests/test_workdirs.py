"""Work folders of killed processes are removed by the next process that makes one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from search import workdirs

HOLDER = ("import sys, time\n"
          "from search import workdirs\n"
          "print(workdirs.new_workdir(sys.argv[1]), flush=True)\n"
          "time.sleep(120)\n")


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(workdirs, "_swept", set())
    return tmp_path


def holder(temp_root: Path, kind: str) -> tuple[subprocess.Popen, Path]:
    """Another process that made a work folder and keeps it."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, kind], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "TMPDIR": str(temp_root)})
    return process, Path(process.stdout.readline().strip())


def test_a_new_workdir_removes_those_of_killed_processes_only(temp_root):
    killed, killed_folder = holder(temp_root, "trial")
    alive, alive_folder = holder(temp_root, "trial")
    other_kind, other_kind_folder = holder(temp_root, "checkpoints")
    unlocked = temp_root / "convsearch-trial-1-old"  # from before folders had locks
    unlocked.mkdir()
    planted = temp_root / f"{workdirs.name_prefix('trial', 1)}x.lock"
    os.mkfifo(planted)  # opening it would block: the sweep must not
    try:
        assert killed_folder.name.startswith(workdirs.name_prefix("trial", killed.pid))
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        other_kind.send_signal(signal.SIGKILL)
        other_kind.wait()
        (killed_folder / "model.keras").write_bytes(b"x")

        made = workdirs.new_workdir("trial")

        names = {p.name for p in temp_root.iterdir()}
        assert killed_folder.name not in names and f"{killed_folder.name}.lock" not in names
        assert {made.name, alive_folder.name, f"{alive_folder.name}.lock", unlocked.name,
                other_kind_folder.name, planted.name} <= names
        workdirs.remove_workdir(made)
        assert not made.exists() and not Path(f"{made}.lock").exists()
        # Each kind is swept by the first folder of its own kind.
        assert workdirs.remove_orphans("checkpoints") == [other_kind_folder]
    finally:
        for process in (killed, alive, other_kind):
            process.kill()
            process.wait()
