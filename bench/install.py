"""``python -m bench.install``: how long a fresh install of the lock takes, with uv and
with pip, side by side.

Each row installs a lock (requirements-test.lock by default, what the README's test
command installs) and the project itself into a new virtual environment, as that command
does: uv (`uv pip install --no-deps --compile-bytecode -r LOCK -e .`) or pip (`pip
install --no-deps -r LOCK`, then `pip install --no-deps -e .`, since pip refuses an
unhashed editable beside hashed pins; pip compiles bytecode by default). "cold" starts
from an empty download cache, so it includes downloading every wheel; "warm" runs again on
the cache the cold run filled. The installer itself (uv from PyPI, or the pip that `venv`
brings) is not counted.

Needs the package registry. Prints one table of wall-clock seconds; one run each.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def install(tool: str, lock: Path, scratch: Path, cache: Path) -> float:
    """Seconds to install `lock` and the project into a new venv under `scratch`."""
    venv = scratch / f"venv-{tool}"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if tool == "uv":
        commands = [[uv, "pip", "install", "-q", "--python", python, "--cache-dir", str(cache),
                     "--no-deps", "--compile-bytecode", "-r", str(lock), "-e", str(REPO)]]
    else:
        pip = [python, "-m", "pip", "install", "-q", "--cache-dir", str(cache), "--no-deps"]
        commands = [[*pip, "-r", str(lock)], [*pip, "-e", str(REPO)]]
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.install", description=__doc__)
    parser.add_argument("--lock", type=Path, default=REPO / "requirements-test.lock",
                        help="the lock to install (default: requirements-test.lock)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="convsearch-install-") as folder:
        scratch = Path(folder)
        for tool in ("uv", "pip"):
            cache = scratch / f"cache-{tool}"
            cold = install(tool, args.lock, scratch, cache)
            warm = install(tool, args.lock, scratch, cache)
            rows.append((tool, cold, warm))
    print(f"Fresh install of {args.lock.name} and the project (seconds, one run each)")
    print("| installer | cold cache | warm cache |\n| --- | ---: | ---: |")
    for tool, cold, warm in rows:
        print(f"| {tool} | {cold:.1f} | {warm:.1f} |")
    uv_cold, pip_cold = rows[0][1], rows[1][1]
    print(f"pip/uv, cold: {pip_cold / uv_cold:.1f}x")


if __name__ == "__main__":
    main()
