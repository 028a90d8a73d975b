"""A real MLflow tracking server on a free loopback port, which a test can stop and start
again (same port, same store) to play a tracking server that goes away."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

#: Where test servers' ports come from: above Ray's worker ports (10002-19999 by
#: default) and below the kernel's ephemeral range, which every outgoing connection on
#: the machine takes its local port from (the other pytest worker's Ray and HTTP clients
#: open many): a port the kernel hands out as free could be taken that way between the
#: test picking it and its server binding it, seconds later.
_SERVER_PORTS_FROM = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A loopback port free now that no other process on the machine will be given
    meanwhile unless it asks for that very port (see `_SERVER_PORTS_FROM`)."""
    try:
        ephemeral_from = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_from = 32768  # Linux's default
    choose = random.SystemRandom()  # not pytest's seed: the other worker picks too
    for _ in range(200 if ephemeral_from - _SERVER_PORTS_FROM >= 1000 else 0):
        port = choose.randrange(_SERVER_PORTS_FROM, ephemeral_from)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    # No such range on this machine, or nothing free in it: the kernel's choice.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: Server worker processes of a test's server: one serves a test's few clients, where
#: MLflow's default of four each import MLflow (on 2 CPUs a start took 28.8 s of CPU and
#: 17.4 s until healthy with four, 11.4 s and 9.6 s with one).
SERVER_WORKERS = 1


class MlflowServer:
    """``python -m services.tracking`` as a process: `start`, `stop`, and its `url`."""

    def __init__(self, folder: Path, *options: str, env: dict[str, str] | None = None,
                 ) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.options = options
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        self._log = open(self.folder / "server.log", "a")  # noqa: SIM115 - closed in stop
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.tracking", "--store", str(self.folder / "server"),
             "--port", str(self.port), "--workers", str(SERVER_WORKERS), *self.options],
            cwd=REPO,
            env={**os.environ, **self.env}, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start:\n" +
                            (self.folder / "server.log").read_text())
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=30)
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def mlflow_server(tmp_path):
    """A running server; the test may stop and start it again."""
    server = MlflowServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: Set by .ci/run, which installs PostgreSQL from Debian's packages: there a missing server
#: fails the PostgreSQL test instead of skipping it.
REQUIRE_POSTGRES_ENV = "CONVSEARCH_REQUIRE_POSTGRES"


def postgres_bindir() -> Path | None:
    """Where PostgreSQL's server programs are: Debian keeps them off PATH, under
    /usr/lib/postgresql/<version>/bin (newest first); elsewhere, on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    """A real PostgreSQL server of its own (a fresh cluster on a free loopback port, fsync
    off, trust auth) with an empty ``mlflow`` database; its SQLAlchemy URI."""
    bindir = postgres_bindir()
    if bindir is None:
        message = "PostgreSQL's server is not installed (Debian: apt-get install postgresql)"
        if os.environ.get(REQUIRE_POSTGRES_ENV):
            pytest.fail(message)
        pytest.skip(message)
    # PostgreSQL refuses to run as root: as root, run it as Debian's postgres user, in a
    # folder that user owns (pytest's tmp_path is root's alone).
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="convsearch-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()

    def run(program: str, *args: str) -> None:
        done = subprocess.run([*as_user, str(bindir / program), *args], capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{program} failed: {done.stdout}{done.stderr}")

    try:
        run("initdb", "-D", str(data), "-U", "convsearch", "-A", "trust", "-E", "UTF8",
            "--no-sync")
        run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
            f"-h 127.0.0.1 -p {port} -k {folder} -F", "start")
        try:
            run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "convsearch", "mlflow")
            yield f"postgresql://convsearch@127.0.0.1:{port}/mlflow"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
