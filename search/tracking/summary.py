"""``summary.md`` of a search: its top trials, its Pareto front, its best model per class,
and the environment it ran in, so a search can be read at a glance and reproduced.

Plain text from plain values; nothing here knows about MLflow.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from search.objectives import OBJECTIVES
from search.observers import SearchOutcome, TrialResult

#: Packages whose versions decide what a search does.
_PACKAGES = ("tensorflow", "keras", "ray", "optuna", "mlflow", "numpy", "scikit-learn")


def environment() -> dict[str, str]:
    """Python's and the key packages' versions, and the git commit of a checkout."""
    found = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    commit = _git_commit(Path(__file__).resolve().parents[2])
    if commit:
        found["convsearch commit"] = commit
    return found


def _git_commit(folder: Path) -> str | None:
    if not (folder / ".git").exists():
        return None  # an installed package, not a checkout
    try:
        result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=False)
    except OSError:
        return None
    return result.stdout.strip() or None


def summary_markdown(name: str, outcome: SearchOutcome, objectives: Sequence[str],
                     seed: int, test_metrics: dict[str, float],
                     class_accuracy: dict[str, float], top: int = 10) -> str:
    """The search's summary as Markdown."""
    lines = [f"# Search {name}", ""]
    best = outcome.best
    lines += [f"Best trial: {best.number} ({best.trial_id}), best validation accuracy "
              f"{_number(best.best_val_accuracy)}; on the test split: "
              + ", ".join(f"{k} {v:.4f}" for k, v in sorted(test_metrics.items())), ""]
    ranked = sorted((t for t in outcome.trials if t.best_val_accuracy is not None),
                    key=lambda t: -t.best_val_accuracy)[:top]
    lines += [f"## Top trials ({len(ranked)} of {len(outcome.trials)})", "",
              "| trial | best val accuracy | epochs | status | params that differ |",
              "| --- | --- | --- | --- | --- |"]
    varying = sorted({k for t in ranked for k, v in t.params.items()
                      if any(o.params.get(k) != v for o in ranked)})
    lines += [f"| {t.number} | {_number(t.best_val_accuracy)} | {t.epochs} | {t.status} | "
              f"{_params(t, varying)} |" for t in ranked]
    if outcome.pareto:
        names = [OBJECTIVES[n] for n in objectives]
        lines += ["", f"## Pareto front ({', '.join(objectives)})", "",
                  "| trial | " + " | ".join(f"{o.name} ({o.mode})" for o in names) + " |",
                  "| --- | " + " | ".join("---" for _ in names) + " |"]
        lines += [f"| {t.number} | " + " | ".join(_number(t.values.get(o.metric))
                                                  for o in names) + " |"
                  for t in outcome.pareto]
    if class_accuracy:
        lines += ["", "## Best model per class (test split)", "",
                  "| class | accuracy |", "| --- | --- |"]
        lines += [f"| {c} | {_number(a)} |" for c, a in class_accuracy.items()]
    lines += ["", "## Environment", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in {**environment(), "seed": str(seed)}.items()]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:,.0f}"  # sizes are counts


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _params(trial: TrialResult, names: Sequence[str]) -> str:
    return ", ".join(f"{k}={_value(trial.params[k])}" for k in names if k in trial.params)
