"""Source readers that need more than files: keras.datasets without a network."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.services.conftest import free_port


def test_keras_dataset_offline_is_one_line(tmp_path):
    # An empty Keras cache and a proxy on a closed loopback port: the download fails at
    # once, as it does on a machine without internet.
    proxy = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": proxy,
           "HTTP_PROXY": proxy, "https_proxy": proxy, "http_proxy": proxy,
           "NO_PROXY": "", "no_proxy": ""}
    result = subprocess.run([sys.executable, "-m", "search.run", "--data", "keras:mnist"],
                            cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convsearch: error: could not download keras:mnist (")
    assert lines[0].endswith("); use an image folder or .npz")
    assert "Traceback" not in result.stderr
