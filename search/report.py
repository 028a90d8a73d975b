"""``python -m search.report NAME``: a past search, read back from MLflow.

Prints the search's settings, its top trials and the model versions it registered
(with their aliases, such as ``champion``); ``--export PATH`` writes its best model as a
``.keras`` file (checked to load in Keras's safe mode). NAME is the search's name or its
parent run's id.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from search.errors import SearchError
from search.memory import exit_after_heavy_imports
from search.quiet import native_output_hidden

#: Exit status of a user error (the same as the search CLI's).
EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    from search.tracking.tracker import DEFAULT_EXPERIMENT

    parser = argparse.ArgumentParser(prog="python -m search.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("search", metavar="NAME", help="the search's name or parent run id")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db)")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT,
                        help=f"MLflow experiment (default: {DEFAULT_EXPERIMENT})")
    parser.add_argument("--top", type=int, default=10, help="trials to list (default: 10)")
    parser.add_argument("--export", type=Path, default=None, metavar="PATH",
                        help="write the best model to PATH (a .keras file)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = build_parser().parse_args(argv)
    try:
        return _report(args)
    except SearchError as exc:
        print(f"convsearch: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def _report(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from search.secrets import redacted
    from search.tracking.reader import export_best_model, read_search
    from search.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    search = read_search(uri, args.experiment, args.search)
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(f"[bold]{search.name}[/bold] (run {search.run_id}): "
                  f"{search.status.lower()}, {len(search.trials)} trials, tracking {redacted(uri)}")
    settings = Table(title="Settings")
    settings.add_column("setting")
    settings.add_column("value")
    for key, value in sorted(search.settings.items()):
        settings.add_row(key, value)
    console.print(settings)
    if search.metrics:
        console.print(", ".join(f"{k} {v:.4g}" for k, v in sorted(search.metrics.items())))

    top = Table(title=f"Top trials ({min(args.top, len(search.trials))} of "
                      f"{len(search.trials)})")
    for column in ("trial", "best val acc", "epochs", "status", "params"):
        top.add_column(column)
    for trial in search.trials[:args.top]:
        accuracy = "-" if trial.best_val_accuracy is None else f"{trial.best_val_accuracy:.4f}"
        params = ", ".join(f"{k}={v}" for k, v in sorted(trial.params.items()))
        top.add_row(str(trial.number), accuracy, str(trial.epochs), trial.status, params)
    console.print(top)
    for version in search.registered:
        aliases = f" ({', '.join(version.aliases)})" if version.aliases else ""
        console.print(f"registered: models:/{version.name}/{version.version}{aliases}")
    if not search.registered:
        console.print("registered: none")
    if args.export is not None:
        with native_output_hidden(unless=False):  # TensorFlow's banners, as Keras loads
            path = export_best_model(uri, search, args.export)
        console.print(f"best model written to {path}")
    return 0


if __name__ == "__main__":
    exit_after_heavy_imports(main())
