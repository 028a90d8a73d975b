"""``python -m bench.data``: how long a search spends getting data to its trials.

Measures, on the embedded digits and on an image folder this script generates (10,000
PNGs by default, one subfolder per class):

- loading: `load_dataset` in the driver (read, check, split), once per search;
- sharing: `ray.put` of the loaded `Dataset` (what `tune.with_parameters` does once) and
  `ray.get` of it (what each trial does; NumPy arrays come back without a copy);
- the trial's input pipeline: building the `tf.data` pipelines, the first pass over the
  training batches (which fills the cache), and a second, cached pass.

Prints one table. Figures are wall-clock seconds on this machine, one run each; compare
rows of the same run, not across machines.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from search.memory import exit_after_heavy_imports

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def make_folder(root: Path, images: int, size: int, classes: int = 10) -> Path:
    """`images` random-noise PNGs of size x size RGB, spread over `classes` subfolders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def measure(source: str, batch_size: int) -> dict[str, float]:
    import ray

    from search.data import load_dataset
    from search.trial.train import input_pipeline

    timings: dict[str, float] = {}
    start = time.perf_counter()
    data = load_dataset(source)
    timings["load"] = time.perf_counter() - start

    start = time.perf_counter()
    ref = ray.put(data)
    timings["ray.put"] = time.perf_counter() - start
    start = time.perf_counter()
    ray.get(ref)
    timings["ray.get"] = time.perf_counter() - start

    start = time.perf_counter()
    train_batches, _ = input_pipeline(data, batch_size, seed=0)
    timings["pipeline build"] = time.perf_counter() - start
    for name in ("first pass", "cached pass"):
        start = time.perf_counter()
        for _ in train_batches:
            pass
        timings[name] = time.perf_counter() - start
    timings["train images"] = float(len(data.y_train))
    timings["input shape"] = data.input_shape  # type: ignore[assignment]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="images in the folder")
    parser.add_argument("--size", type=int, default=32, help="side of each image")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from search.engine.resources import ray_session
    from search.settings import SearchSettings

    rows = []
    with (ray_session(SearchSettings(), verbose=False),
          tempfile.TemporaryDirectory() as tmp):
        start = time.perf_counter()
        folder = make_folder(Path(tmp) / "folder", args.images, args.size)
        made = time.perf_counter() - start
        rows.append(("digits", measure("digits", args.batch_size)))
        rows.append((f"folder of {args.images:,} PNGs", measure(str(folder), args.batch_size)))

    columns = ["load", "ray.put", "ray.get", "pipeline build", "first pass", "cached pass"]
    table = Table(title=f"Getting data to trials (seconds, batch {args.batch_size}, "
                        f"{os.cpu_count()} CPUs)")
    table.add_column("data")
    table.add_column("train images")
    table.add_column("shape")
    for column in columns:
        table.add_column(column, justify="right")
    for name, timing in rows:
        table.add_row(name, f"{int(timing['train images']):,}",
                      "x".join(map(str, timing["input shape"])),
                      *(f"{timing[c]:.3f}" for c in columns))
    console = Console(width=140)
    console.print(table)
    console.print(f"(generating the folder took {made:.1f} s, not counted above)")


if __name__ == "__main__":
    main()
    exit_after_heavy_imports(0)
