"""``python -m bench.efficiency``: how fast each search strategy finds a good CNN.

Every arm gets the same total epoch budget (``--epoch-budget``, enforced by the search's
own `--epoch-budget`), on two data sets made without downloads:

- ``digits``: the embedded 8x8 digits;
- ``hard-digits``: each digit upscaled to 16x16 and dropped at a random place on a 24x24
  canvas with Gaussian noise and a fainter second digit as a distractor.

Arms: TPE + ASHA (the product's default), random + ASHA, TPE without early stopping,
random without early stopping (all on the default space), and grid on the
grid_optimizers space. Each arm runs with several seeds. For each run it records the best
validation accuracy after the budget, the test accuracy of that best model, and the wall
time and epochs it took to first reach ``--target`` validation accuracy.

Prints a table of means and spreads and saves a plot of best-so-far validation accuracy
against wall time (one line per run) for each data set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from search.memory import exit_after_heavy_imports
from search.observers import SearchObserver

#: Validation accuracy each data set's arms are timed to (a good CNN reaches about 0.98 on
#: digits and about 0.88 on hard-digits in 20 epochs).
TARGETS = {"digits": 0.97, "hard-digits": 0.85}

#: (label, space, algorithm, scheduler)
ARMS = [
    ("tpe + asha", "default", "tpe", "asha"),
    ("random + asha", "default", "random", "asha"),
    ("tpe, no early stop", "default", "tpe", "none"),
    ("random, no early stop", "default", "random", "none"),
    ("grid (grid space)", "grid_optimizers", "grid", "none"),
]


def hard_digits(seed: int = 0) -> Any:
    """Digits upscaled, placed at random on a noisy 24x24 canvas, with a distractor."""
    import numpy as np
    from sklearn.datasets import load_digits

    from search.data import split_dataset
    from search.data.sources import RawData

    digits = load_digits()
    rng = np.random.default_rng(seed)
    images = np.kron(digits.images, np.ones((2, 2))) / 16.0  # 16x16 in [0, 1]
    canvas = rng.normal(0.0, 0.25, (len(images), 24, 24)).clip(0, None)
    for i, image in enumerate(images):
        other = images[rng.integers(len(images))] * 0.5
        for picture in (other, image):  # the distractor first, the labelled digit on top
            top, left = rng.integers(0, 9, size=2)
            region = canvas[i, top:top + 16, left:left + 16]
            np.maximum(region, picture, out=region)
    x = (canvas.clip(0, 1.5) * (255 / 1.5)).astype("float32")[..., np.newaxis]
    raw = RawData({"train": (x, digits.target.astype("int64"))},
                  tuple(str(c) for c in digits.target_names), 255.0)
    return split_dataset("hard-digits", raw)


@dataclass
class Timeline(SearchObserver):
    """Best-so-far validation accuracy after every reported epoch of a search."""

    target: float
    started: float = field(default_factory=time.perf_counter)
    points: list[tuple[float, int, float]] = field(default_factory=list)  # (s, epochs, best)
    best: float = 0.0
    epochs: int = 0

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs += 1
        self.best = max(self.best, metrics["val_accuracy"])
        self.points.append((time.perf_counter() - self.started, self.epochs, self.best))

    def reached(self) -> tuple[float, int] | None:
        """(seconds, epochs) when the target was first reached, if it was."""
        for seconds, epochs, best in self.points:
            if best >= self.target:
                return seconds, epochs
        return None


def run_arm(data: Any, arm: tuple, seed: int, args: argparse.Namespace, workdir: Path,
            ) -> dict[str, Any]:
    from search.engine.tuner import run_search
    from search.settings import SearchSettings
    from search.space import load_space
    from search.trial.train import evaluate, load_checkpoint

    label, space_name, algorithm, scheduler = arm
    settings = SearchSettings(
        name=f"{data.slug}-{algorithm}-{scheduler}-{seed}", algorithm=algorithm,
        scheduler=scheduler, trials=1000, epoch_budget=args.epoch_budget,
        max_epochs=args.max_epochs, grace_epochs=args.grace_epochs, seed=seed,
        storage=workdir / "ray")
    timeline = Timeline(args.target or TARGETS[data.name])
    outcome = run_search(load_space(space_name), data, settings, observers=[timeline])
    test = evaluate(load_checkpoint(outcome.best_checkpoint), data)["test_accuracy"]
    return {"label": label, "seed": seed, "best_val": outcome.best.best_val_accuracy,
            "test": test, "reached": timeline.reached(), "epochs": timeline.epochs,
            "seconds": time.perf_counter() - timeline.started, "points": timeline.points}


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {spread:.4f}"


def save_plot(name: str, runs: list[dict[str, Any]], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    colors = {arm[0]: f"C{i}" for i, arm in enumerate(ARMS)}
    for run in runs:
        seconds = [p[0] for p in run["points"]]
        best = [p[2] for p in run["points"]]
        axes.step(seconds, best, where="post", color=colors[run["label"]], alpha=0.8,
                  label=run["label"] if run["seed"] == runs[0]["seed"] else None)
    axes.axhline(target, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("wall time (s)")
    axes.set_ylabel("best validation accuracy so far")
    axes.set_ylim(max(0.0, min(p[2] for r in runs for p in r["points"][:1]) - 0.05), 1.0)
    axes.set_title(f"{name}: best-so-far validation accuracy, same epoch budget per run")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="runs per arm and data set")
    parser.add_argument("--epoch-budget", type=int, default=150,
                        help="total epochs each search may train")
    parser.add_argument("--max-epochs", type=int, default=20, help="most epochs per trial")
    parser.add_argument("--grace-epochs", type=int, default=3, help="ASHA's grace period")
    parser.add_argument("--target", type=float, default=None,
                        help="validation accuracy to time the arms to (default: "
                             + ", ".join(f"{k} {v}" for k, v in TARGETS.items()) + ")")
    parser.add_argument("--data", nargs="+", default=["digits", "hard-digits"],
                        choices=["digits", "hard-digits"])
    parser.add_argument("--out", type=Path, default=Path("bench/results"),
                        help="folder for the plots")
    parser.add_argument("--arms", nargs="+", default=[arm[0] for arm in ARMS],
                        choices=[arm[0] for arm in ARMS], metavar="ARM",
                        help="arms to run (default: all: " + "; ".join(a[0] for a in ARMS) + ")")
    args = parser.parse_args()

    import optuna
    from rich.console import Console
    from rich.table import Table

    from search.data import load_dataset
    from search.engine.resources import ray_session
    from search.settings import SearchSettings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    console = Console(width=150)
    targets = {n: args.target or TARGETS[n] for n in args.data}
    table = Table(title=f"Search efficiency: {args.epoch_budget} epochs per search, "
                        f"{args.seeds} seeds, target val_accuracy "
                        f"{', '.join(f'{n} {t}' for n, t in targets.items())}, "
                        f"{os.cpu_count()} CPUs (mean ± standard deviation)")
    for column in ("data", "arm", "best val_accuracy", "test accuracy", "reached target",
                   "epochs to target", "seconds to target", "seconds in all"):
        table.add_column(column)
    # One Ray instance for all the searches, started as a search starts its own.
    with (ray_session(SearchSettings(), verbose=False),
          tempfile.TemporaryDirectory() as tmp):
        for name in args.data:
            data = load_dataset("digits") if name == "digits" else hard_digits()
            runs = []
            for arm in (a for a in ARMS if a[0] in args.arms):
                results = [run_arm(data, arm, seed, args, Path(tmp)) for seed in
                           range(args.seeds)]
                runs += results
                reached = [r["reached"] for r in results if r["reached"] is not None]
                table.add_row(name, arm[0], _spread([r["best_val"] for r in results]),
                              _spread([r["test"] for r in results]),
                              f"{len(reached)}/{len(results)}",
                              _spread([float(e) for _, e in reached]).replace(".0000", ""),
                              _spread([s for s, _ in reached]),
                              _spread([r["seconds"] for r in results]))
                console.print(f"done: {name} / {arm[0]}")
            save_plot(name, runs, targets[name], args.out / f"efficiency_{name}.png")
    console.print(table)
    console.print(f"plots: {', '.join(str(args.out / f'efficiency_{n}.png') for n in args.data)}")


if __name__ == "__main__":
    main()
    exit_after_heavy_imports(0)
