"""``python -m bench.pareto --seeds 5 --epoch-budget 120``: multi-objective early stopping.

The shipped ``multi_objective`` space (validation accuracy against parameters) on digits,
searched under three trial schedulers at the same total epoch budget and seeds:

- ``mo-asha``: ASHA ranking each rung by Pareto fronts (the default for this space);
- ``asha``: Ray Tune's ASHA, which ranks by validation accuracy alone;
- ``none``: no early stopping across trials (each trial's own early stopping only).

Each search's result is its final Pareto front; the table gives the hypervolume of that
front (accuracy against log10 parameters, measured from one reference point for every
run: accuracy 0 and the largest model any run trained), mean ± standard deviation over
the seeds, and the front's size. Larger is better. Epochs, not seconds, are the budget,
so the figures do not depend on the machine's speed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from search.memory import exit_after_heavy_imports

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

#: The schedulers compared, in the table's order.
ARMS = ("mo-asha", "asha", "none")


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by `points` (both coordinates larger-is-better) above `reference`."""
    inside = sorted((p for p in points if p[0] > reference[0] and p[1] > reference[1]),
                    reverse=True)
    area, best_second = 0.0, reference[1]
    for first, second in inside:  # by the first coordinate, descending
        if second > best_second:
            area += (first - reference[0]) * (second - best_second)
            best_second = second
    return area


def run_arm(data: Any, scheduler: str, seed: int, args: argparse.Namespace,
            workdir: Path) -> list[tuple[float, float]]:
    """One search; every finished trial's (accuracy, parameters)."""
    from search.engine.tuner import run_search
    from search.settings import SearchSettings
    from search.space import load_space

    settings = SearchSettings(
        name=f"pareto-{scheduler}-{seed}", scheduler=scheduler, trials=1000,
        epoch_budget=args.epoch_budget, max_epochs=args.max_epochs,
        grace_epochs=args.grace_epochs, seed=seed, storage=workdir / "ray")
    outcome = run_search(load_space(args.space), data, settings)
    return [(t.values["best_val_accuracy"], t.values["params"]) for t in outcome.trials
            if "best_val_accuracy" in t.values and "params" in t.values]


def _front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both (larger-is-better) coordinates."""
    from search.objectives import non_dominated

    return [points[i] for i in non_dominated(points)]


def _oriented(run: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(accuracy, parameters) as (accuracy, -log10 parameters): larger is better."""
    return [(accuracy, -math.log10(params)) for accuracy, params in run]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pareto", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epoch-budget", type=int, default=120,
                        help="epochs per search, all trials together")
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--grace-epochs", type=int, default=2)
    parser.add_argument("--space", default="multi_objective")
    parser.add_argument("--data-limit", type=int, default=None)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    args = parser.parse_args()

    from search.data import load_dataset
    from search.engine.resources import ray_session
    from search.settings import SearchSettings

    data = load_dataset("digits", limit=args.data_limit)
    runs: dict[str, list[list[tuple[float, float]]]] = {arm: [] for arm in args.arms}
    # One Ray instance for all the searches, started as a search starts its own.
    with (ray_session(SearchSettings(), verbose=False),
          tempfile.TemporaryDirectory(prefix="convsearch-bench-pareto-") as folder):
        for seed in range(args.seeds):
            for arm in args.arms:
                runs[arm].append(run_arm(data, arm, seed, args, Path(folder)))
    largest = max(params for points in runs.values() for run in points for _, params in run)
    reference = (0.0, -math.log10(largest))

    print(f"\nPareto bench: {args.space} space on digits, {args.epoch_budget} epochs per "
          f"search (at most {args.max_epochs} per trial, grace {args.grace_epochs}), "
          f"{args.seeds} seeds; hypervolume of accuracy x -log10(parameters) from "
          f"(0, -log10 {largest:,.0f})\n")
    volumes = {arm: [hypervolume(_front(_oriented(run)), reference) for run in points]
               for arm, points in runs.items()}
    first = args.arms[0]
    print(f"| scheduler | hypervolume | front size | trials | {first} minus this, paired "
          f"by seed | seeds {first} wins |")
    print("| --- | --- | --- | --- | --- | --- |")
    for arm, points in runs.items():
        size = statistics.mean(len(_front(_oriented(run))) for run in points)
        trials = statistics.mean(len(run) for run in points)
        differences = [a - b for a, b in zip(volumes[first], volumes[arm], strict=True)]
        paired = "-" if arm == first else _spread(differences)
        wins = "-" if arm == first else f"{sum(d > 0 for d in differences)}/{len(differences)}"
        print(f"| {arm} | {_spread(volumes[arm])} | {size:.1f} | {trials:.1f} | {paired} | "
              f"{wins} |")
    print("\nper seed: " + "; ".join(
        f"{arm} " + ", ".join(f"{v:.3f}" for v in values) for arm, values in volumes.items()))


def _spread(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"

if __name__ == "__main__":
    main()
    exit_after_heavy_imports(0)
