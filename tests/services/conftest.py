"""A real MLflow tracking server on a free loopback port, which a test can stop and start
again (same port, same store) to play a tracking server that goes away."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
             "--port", str(self.port), *self.options], cwd=REPO,
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
