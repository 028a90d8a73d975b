"""``python -m search.run``: run a hyperparameter search from the command line.

The CLI owns the console. It turns its flags into a `SearchRequest` (or, with
``--resume NAME``, reads back the one that search recorded), has `search.pipeline` check
it before anything heavy starts (the space file, the data, whether the space's models fit
the data) and run it with a progress bar, and prints a summary with the commands to
inspect the result.

Every `SearchError` is caught here, once, and printed as one line (exit status 2). A
search stopped by SIGINT or SIGTERM prints what finished and, last, the command that
resumes it (exit status 130 or 143). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from search.errors import SearchError, SearchInterrupted, SettingsError
from search.interrupts import signal_handlers
from search.memory import exit_after_heavy_imports
from search.quiet import native_output_hidden
from search.secrets import MASK, redacted

if TYPE_CHECKING:
    from rich.console import Console

    from search.observers import TrialResult
    from search.pipeline import PreparedSearch, SearchReport
    from search.request import SearchRequest
    from search.space import SearchSpace

#: Exit status for user errors (bad flags, bad files, unusable data).
EXIT_USER_ERROR = 2

#: The flags a resumed search may be given: the rest come from what it recorded.
RESUME_FLAGS = ("resume", "trials", "time_budget", "tracking_uri", "notify", "storage",
                "verbose")

#: How many of the best trials the summary table shows.
SUMMARY_ROWS = 5


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a `SettingsError` (one line), not usage text."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's flags; defaults come from the modules that own them."""
    from search.data import DEFAULT_DATA
    from search.data.sources import COLOR_MODES, KERAS_DATASETS
    from search.settings import (
        ALGORITHMS,
        CHECKPOINTING_SCHEDULERS,
        DEFAULT_CHECKPOINT_INTERVAL_S,
        DEFAULT_GRACE_EPOCHS,
        DEFAULT_TRIALS,
        SCHEDULERS,
        SearchSettings,
    )
    from search.space import DEFAULT_SPACE

    defaults = {f.name: f.default for f in dataclasses.fields(SearchSettings)}
    parser = _Parser(
        prog="python -m search.run", allow_abbrev=False,  # no --noti URL past redaction
        description="Search for the best Keras CNN on an image data set. Trials run on Ray "
                    "Tune (Optuna TPE + ASHA by default); every trial is tracked in MLflow.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    what = parser.add_argument_group("what to search")
    what.add_argument("--space", default=DEFAULT_SPACE,
                      help="search space: a YAML file, or the name of a shipped space")
    what.add_argument("--data", default=DEFAULT_DATA,
                      help="data to search on: digits (embedded), keras:NAME (NAME one of "
                           f"{', '.join(KERAS_DATASETS)}; downloaded on first use), a .npz "
                           "file (x_train, y_train, optionally x_val, y_val, x_test, y_test), "
                           "or an image folder with one subfolder per class")
    what.add_argument("--image-size", default=None, metavar="HxW",
                      help="resize an image folder's images to HxW (default: keep their "
                           "size, which must then be the same for all)")
    what.add_argument("--color-mode", default="rgb", choices=COLOR_MODES,
                      help="read an image folder's images as rgb or grayscale")
    what.add_argument("--data-limit", type=int, metavar="N", default=None,
                      help="use only N examples in all (stratified), for quick runs")

    budget = parser.add_argument_group("budget")
    budget.add_argument("--trials", type=int, default=None,
                        help=f"trials to run in all (default: {DEFAULT_TRIALS}; a grid search "
                             "runs every grid point)")
    budget.add_argument("--max-epochs", type=int, default=defaults["max_epochs"],
                        help="most epochs per trial")
    budget.add_argument("--patience", type=int, default=defaults["patience"],
                        help="epochs without improvement before a trial stops itself")
    budget.add_argument("--grace-epochs", type=int, default=None,
                        help="epochs every trial gets before ASHA may stop it (default: "
                             f"{DEFAULT_GRACE_EPOCHS}, or --max-epochs if smaller)")
    budget.add_argument("--scheduler", choices=list(SCHEDULERS), default=None,
                        help="; ".join(f"{k}: {v}" for k, v in SCHEDULERS.items()))
    budget.add_argument("--reduction-factor", type=int, default=defaults["reduction_factor"],
                        metavar="N", help="asha, mo-asha and hyperband keep the top 1/N "
                                          "of trials at each rung")
    budget.add_argument("--perturbation-interval", type=int,
                        default=defaults["perturbation_interval"], metavar="EPOCHS",
                        help="pbt: epochs between decisions to continue a lagging trial "
                             "from a better one")
    budget.add_argument("--epoch-budget", type=int, default=None, metavar="N",
                        help="stop the search once its trials have trained N epochs in all")
    budget.add_argument("--time-budget", default=None, metavar="DURATION",
                        help="end the search normally after DURATION (90s, 30m, 2h; counted "
                             "from each start of a resumed search): running trials stop, "
                             "the best so far is registered")
    budget.add_argument("--max-failures", type=int, default=defaults["max_failures"],
                        metavar="N", help="restarts, from its latest checkpoint, of a trial "
                                          "whose worker died (killed, out of memory); trials "
                                          "that raise are not retried")
    budget.add_argument("--checkpoint-interval", type=float, default=None, metavar="SECONDS",
                        help="most seconds of training a restarted trial may lose: epochs "
                             "are checkpointed when they are a trial's best, its last, or "
                             "this long after its previous checkpoint (0: every epoch; "
                             f"default: {DEFAULT_CHECKPOINT_INTERVAL_S:g}, 0 under "
                             f"{' and '.join(CHECKPOINTING_SCHEDULERS)})")
    budget.add_argument("--max-consecutive-failures", type=int,
                        default=defaults["max_consecutive_failures"], metavar="N",
                        help="stop the search after N failed trials in a row")
    budget.add_argument("--seed", type=int, default=defaults["seed"],
                        help="seed of the search algorithm and weight initialisation")
    budget.add_argument("--deterministic", action="store_true",
                        help="only deterministic TensorFlow ops, in the trials and the "
                             "evaluation: the same seed gives the same results on GPUs too, "
                             "more slowly (on CPUs they repeat without it)")
    what.add_argument("--algo", choices=list(ALGORITHMS), default=None,
                      help="search algorithm: " + "; ".join(
                          f"{name}: {meaning}" for name, meaning in ALGORITHMS.items())
                      + " (default: grid for a space with grid lists, else tpe)")

    machine = parser.add_argument_group("machine")
    machine.add_argument("--concurrency", type=int, default=None,
                         help="trials at a time (default: as many as CPUs/GPUs allow)")
    machine.add_argument("--cpus", type=int, default=None,
                         help="CPUs for the local Ray instance (default: all)")
    machine.add_argument("--gpus-per-trial", type=float, default=None,
                         help="GPUs per trial; fractions share a GPU (default: 1 if any)")
    machine.add_argument("--ray-address", default=None,
                         help="address of a running Ray cluster (default: start a local one)")
    machine.add_argument("--storage", type=_storage, default=str(defaults["storage"]),
                         help="folder (or URI) for Ray Tune results and checkpoints")

    tracking = parser.add_argument_group("tracking")
    tracking.add_argument("--tracking-uri", default=None,
                          help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                               "else sqlite:///mlflow.db in this folder)")
    tracking.add_argument("--experiment", default=None,
                          help="MLflow experiment name (default: convsearch)")
    tracking.add_argument("--name", default=None,
                          help="name of this search (default: search-<date>-<time>)")
    tracking.add_argument("--model-name", default=None,
                          help="Model Registry name of the best model "
                               "(default: convsearch-<data name>)")
    tracking.add_argument("--promote-margin", type=float, default=0.0, metavar="ACCURACY",
                          help="the new best model becomes champion only if its test "
                               "accuracy beats the champion's (on this search's test split) "
                               "by more than this (default: 0)")
    tracking.add_argument("--promote-significance", type=float, default=None,
                          metavar="ALPHA", help="and only if McNemar's test on the paired "
                                                "predictions gives p < ALPHA")
    tracking.add_argument("--notify", default=None, metavar="URL",
                          help="webhook told (Slack-style JSON) when the search finishes, "
                               "fails or is stopped")
    tracking.add_argument("--warm-start", default=None, metavar="NAME|latest",
                          help="first try the best configs of an earlier search of the same "
                               "space in this experiment")
    parser.add_argument("--resume", default=None, metavar="NAME",
                        help="continue the search NAME (run from the folder it ran in, or "
                             "give its --storage): its space, data and settings come from "
                             "what it recorded; --trials N extends it to N trials in all")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Ray Tune's status and the trials' own output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    session = _Session()
    # SIGTERM outside the trials' loop (loading data, registering the model) stops the
    # driver as Ctrl+C does; inside it, the engine stops the search cleanly.
    stop_signals = {signal.SIGTERM: _raise_interrupted,
                    signal.SIGINT: signal.default_int_handler}
    with signal_handlers(stop_signals):
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            _configure_logging(args.verbose)
            return _search(args, _given_flags(parser, argv), session)
        except SearchInterrupted as exc:
            session.interrupted(exc)
            return 128 + exc.signum
        except SearchError as exc:
            print(f"convsearch: error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            session.interrupted(SearchInterrupted(signal.SIGINT))
            return 128 + signal.SIGINT


def _raise_interrupted(signum: int, frame: object) -> None:
    raise SearchInterrupted(signum)


class _Session:
    """What the CLI knows of the search it runs, for the last words of an interrupted one."""

    def __init__(self) -> None:
        self.console: Console | None = None
        self.prepared: PreparedSearch | None = None

    def interrupted(self, exc: SearchInterrupted) -> None:
        console = self.console
        if console is None or self.prepared is None:
            print(f"convsearch: {exc}", file=sys.stderr)
            return
        if exc.trials:
            _print_trials(console, exc.trials)
        _print_unrecorded(console, exc.unrecorded)
        settings = self.prepared.settings
        console.print(f"[bold yellow]search {settings.name} {exc}[/bold yellow]: running "
                      "trials were checkpointed; the champion model was not changed")
        storage = ("" if _storage(str(settings.storage)) == _default_storage().resolve()
                   else f" --storage {shlex.quote(str(settings.storage))}")
        console.print(f"resume it with: {_shell_path(sys.executable)} -m search.run --resume "
                      f"{shlex.quote(settings.name)}{storage}", soft_wrap=True,
                      markup=False, highlight=False)


def _given_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """The destinations of the flags the user gave (not defaulted)."""
    saved = {action.dest: action.default for action in parser._actions}
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    try:
        return set(vars(parser.parse_args(argv)))
    finally:
        for action in parser._actions:
            action.default = saved[action.dest]


def _request(args: argparse.Namespace, given: set[str]) -> tuple[SearchRequest, bool]:
    """The request the flags describe, and whether it resumes a search."""
    from search.champion import PromotionPolicy
    from search.pipeline import load_request
    from search.request import DataRequest, SearchRequest
    from search.settings import SearchSettings, parse_duration

    time_budget = parse_duration(args.time_budget) if args.time_budget else None
    if args.resume:
        fixed = sorted(given - set(RESUME_FLAGS))
        if fixed:
            names = ", ".join("--" + name.replace("_", "-") for name in fixed)
            raise SettingsError(f"--resume continues a search with the settings it "
                                f"recorded; {names} cannot be given with it (only --trials, "
                                "--time-budget, --tracking-uri, --notify, --storage)")
        request = load_request(args.resume, args.storage)
        # The folder the record was found in, wherever the search ran from.
        settings = dataclasses.replace(request.settings, storage=args.storage)
        if "trials" in given:
            settings = dataclasses.replace(settings, trials=args.trials)
        if "time_budget" in given:
            settings = dataclasses.replace(settings, time_budget_s=time_budget)
        changes: dict[str, object] = {"settings": settings}
        if "tracking_uri" in given:
            changes["tracking_uri"] = args.tracking_uri
        elif request.tracking_uri and MASK in request.tracking_uri:
            raise SettingsError(f"search {args.resume!r} was recorded in "
                                f"{request.tracking_uri}, whose password is not recorded; "
                                "give --tracking-uri again")
        if "notify" in given:
            changes["notify"] = args.notify
        return dataclasses.replace(request, **changes), True
    overrides = {"name": args.name} if args.name else {}
    settings = SearchSettings(
        algorithm=args.algo, trials=args.trials, max_epochs=args.max_epochs,
        patience=args.patience, scheduler=args.scheduler, epoch_budget=args.epoch_budget,
        time_budget_s=time_budget, grace_epochs=args.grace_epochs, seed=args.seed,
        deterministic=args.deterministic,
        concurrency=args.concurrency, cpus=args.cpus, gpus_per_trial=args.gpus_per_trial,
        storage=args.storage, ray_address=args.ray_address, max_failures=args.max_failures,
        max_consecutive_failures=args.max_consecutive_failures,
        checkpoint_interval_s=args.checkpoint_interval,
        reduction_factor=args.reduction_factor,
        perturbation_interval=args.perturbation_interval, **overrides)
    data = DataRequest(source=args.data, limit=args.data_limit,
                       image_size=_image_size(args.image_size) if args.image_size else None,
                       color_mode=args.color_mode)
    promotion = PromotionPolicy(margin=args.promote_margin,
                                significance=args.promote_significance)
    return SearchRequest(space=args.space, data=data, settings=settings,
                         tracking_uri=args.tracking_uri, experiment=args.experiment,
                         model_name=args.model_name, promotion=promotion, notify=args.notify,
                         warm_start=args.warm_start), False


def _search(args: argparse.Namespace, given: set[str], session: _Session) -> int:
    from rich.console import Console

    from search.pipeline import execute, prepare

    # Off a terminal (CI logs, pipes) rich assumes 80 columns; the summary needs more.
    console = Console(width=None if sys.stdout.isatty() else 120)
    request, resume = _request(args, given)
    with native_output_hidden(unless=args.verbose):  # folders and keras: load TensorFlow
        prepared = prepare(request)
    survey, settings, data = prepared.survey, prepared.settings, prepared.data

    # Heavy imports (TensorFlow, Ray) only once the input is known to be good. MLflow is
    # imported by `execute`, in a thread while Ray starts.
    with native_output_hidden(unless=args.verbose):
        import search.engine.tuner  # noqa: F401
        from search.progress import SearchProgress
        from search.trial.train import configure_tensorflow

        # The driver evaluates the best model: let TensorFlow probe for GPUs now, while
        # its CUDA messages are hidden, and grow GPU memory rather than take it all.
        configure_tensorflow(cpu_threads=None, deterministic=settings.deterministic)
    _configure_logging(args.verbose)

    sizes = "/".join(str(n) for n in data.sizes().values())
    verb = "resuming" if resume else "starting"
    console.print(f"[bold]{settings.name}[/bold]: {verb}, {settings.trials} trials "
                  f"({settings.algorithm}, scheduler {settings.scheduler}), space "
                  f"{prepared.request.space}, data {data.name} "
                  f"(train/val/test {sizes}), tracking {redacted(prepared.request.tracking_uri)}")
    if resume and "trials" in given:
        console.print(f"extending search {settings.name} to {settings.trials} trials in all "
                      "(the trials it ran are kept)")
    if survey.feasible < survey.samples:
        console.print(f"{survey.samples - survey.feasible} of {survey.samples} sampled configs "
                      f"cannot be trained on these images; the search skips such configs")
    session.console, session.prepared = console, prepared
    with SearchProgress(console, settings.trials) as progress:
        report = execute(prepared, [progress], resume=resume, verbose=args.verbose)
    _print_summary(console, report, prepared.space, data.input_shape)
    return 0


def _print_summary(console: Console, report: SearchReport, space: SearchSpace,
                   input_shape: tuple[int, ...]) -> None:
    outcome, registered = report.outcome, report.registered
    _print_trials(console, outcome.trials)
    if outcome.pareto:
        from rich.table import Table

        from search.objectives import OBJECTIVES

        front = Table(title=f"Pareto front ({len(outcome.pareto)} trials; "
                            f"{', '.join(space.objectives)})")
        front.add_column("trial", no_wrap=True)
        for name in space.objectives:
            front.add_column(f"{name} ({OBJECTIVES[name].mode})", no_wrap=True)
        first = OBJECTIVES[space.objectives[0]]
        ordered = sorted(outcome.pareto, key=lambda t: t.values[first.metric],
                         reverse=first.mode == "max")
        for trial in ordered:
            front.add_row(trial.trial_id, *(f"{trial.values[OBJECTIVES[n].metric]:.4g}"
                                            for n in space.objectives))
        console.print(front)
        rule = (f"highest {' + '.join(f'{w:g}*{n}' for n, w in space.trade_off.items())}"
                if space.trade_off else f"best {space.objectives[0]}")
        console.print(f"registered model: {rule}")
    if outcome.stop_reason:
        console.print(f"the search ended early: {outcome.stop_reason}")
    skipped = sum(outcome.infeasible.values())
    if skipped:
        reason, count = outcome.infeasible.most_common(1)[0]
        console.print(f"skipped {skipped} sampled configs that could not be trained (most "
                      f"often, {count}x: {reason})", markup=False)
    _print_unrecorded(console, report.unrecorded)
    test_metrics = report.test_metrics
    console.print(f"[bold green]best model: test accuracy {test_metrics['test_accuracy']:.4f}"
                  f"[/bold green] (test loss {test_metrics['test_loss']:.4f}), trial "
                  f"{outcome.best.trial_id}, registered as {registered.uri} "
                  f"(version {registered.version})")
    if registered.decision:
        verdict = "it is the new champion" if registered.champion else \
            "the champion stays"
        console.print(f"champion: {verdict}; {registered.decision}", markup=False)
    attacked = {k.split(".", 1)[1]: v for k, v in test_metrics.items()
                if k.startswith("fgsm_accuracy.")}
    if attacked:
        console.print("robustness: test accuracy under FGSM " + ", ".join(
            f"{v:.4f} at epsilon {eps}" for eps, v in attacked.items())
            + " (pixel units)")
    python = _shell_path(sys.executable)
    tracking_uri = redacted(report.tracking_uri)
    env = f"MLFLOW_TRACKING_URI={shlex.quote(tracking_uri)} "
    console.print("\nOpen this search in the MLflow UI:", soft_wrap=True)
    console.print(f"  {python} -m mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"
                  f"  # then http://127.0.0.1:5000/{report.run_url}", soft_wrap=True,
                  markup=False)
    console.print("Load the best model:", soft_wrap=True)
    shape = ", ".join(map(str, input_shape))
    snippet = (f'import mlflow, numpy as np; model = mlflow.pyfunc.load_model("{registered.uri}"); '
               f'print(model.predict(np.zeros((1, {shape}), "float32")))')
    console.print(f"  {env}{python} -c {shlex.quote(snippet)}", soft_wrap=True, markup=False)


def _print_trials(console: Console, trials: Sequence[TrialResult]) -> None:
    """The best trials as a table, then the count of each outcome and the failures."""
    from rich.table import Table

    from search.trial.config import TrialConfig

    ranked = sorted((t for t in trials if t.best_val_accuracy is not None),
                    key=lambda t: -t.best_val_accuracy)
    table = Table(title=f"Best trials ({len(trials)} run)")
    for column in ("trial", "val acc", "epochs", "status", "optimizer", "lr", "conv blocks",
                   "dense", "batch"):
        table.add_column(column, no_wrap=True)
    for trial in ranked[:SUMMARY_ROWS]:
        config = TrialConfig.from_params(trial.params)
        conv = ", ".join(f"{b.filters}@{b.kernel_size}x{b.kernel_size}"
                         f"{'' if b.convs_per_block == 1 else f'x{b.convs_per_block}'}"
                         f"{'' if b.stride == 1 else f'/{b.stride}'} {b.pooling}"
                         for b in config.blocks)
        table.add_row(trial.trial_id, f"{trial.best_val_accuracy:.4f}", str(trial.epochs),
                      trial.status, config.optimizer, f"{config.learning_rate:.1e}", conv,
                      str(config.dense_units), str(config.batch_size))
    console.print(table)
    statuses = {s: sum(t.status == s for t in trials) for s in ("completed", "stopped", "failed")}
    console.print("trials: " + ", ".join(f"{n} {s}" for s, n in statuses.items()))
    for trial in (t for t in trials if t.status == "failed"):
        console.print(f"  [red]failed[/red] trial {trial.trial_id}: {trial.error}",
                      markup=True, highlight=False)


def _print_unrecorded(console: Console, unrecorded: Sequence[str]) -> None:
    if unrecorded:
        console.print("[yellow]MLflow could not record[/yellow] (it is in Ray's results): "
                      + "; ".join(unrecorded), highlight=False)


def _storage(text: str) -> Path | str:
    """--storage: a URI as given, a local folder made absolute (so a search's record
    names it wherever it is resumed from)."""
    return text if "://" in text else Path(text).resolve()


def _default_storage() -> Path:
    from search.settings import DEFAULT_STORAGE

    return DEFAULT_STORAGE


def _image_size(text: str) -> tuple[int, int]:
    """``32x32`` -> (32, 32).

    Raises:
        SettingsError: not two positive whole numbers joined by x.
    """
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text)
    if not match or min(int(g) for g in match.groups()) < 1:
        raise SettingsError(f"--image-size {text!r} is not a size like 32x32")
    return int(match.group(1)), int(match.group(2))


def _shell_path(executable: str) -> str:
    """The interpreter as the user would type it: relative when under this folder."""
    path = Path(executable)
    try:
        return shlex.quote(str(path.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(path))


def _configure_logging(verbose: bool) -> None:
    """Our log lines through rich; the libraries' INFO chatter off unless verbose. Called
    again after the libraries are imported, since some set their own levels on import."""
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(show_path=False, show_time=False)])
    for noisy in ("absl", "alembic", "mlflow", "ray", "tensorflow", "optuna"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    # MLflow sets its own loggers' levels when it is imported (the loop above covers a
    # command that imported it already); a search imports it later, in a thread while
    # Ray starts: tell MLflow the level to set.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "ERROR")
    # Tune logs each failed trial's traceback at ERROR; the summary and MLflow carry the
    # one-line reason instead, and --verbose brings the tracebacks back.
    logging.getLogger("ray.tune").setLevel(logging.INFO if verbose else logging.CRITICAL)


if __name__ == "__main__":
    exit_after_heavy_imports(main())
