"""``python -m search.space check SPACE --input 28x28x1``: what a space will search,
before any search runs.

Prints the space knob by knob (with conditions), the number of grid points for a grid
space, how many sampled configs can be trained on images of that shape, the most common
reasons the others cannot, and the smallest and largest model the space produces, layer
by layer (output shapes and parameter counts from `search.architecture`, which agree
with Keras exactly). Imports neither TensorFlow nor Ray; runs in about a second.

A bad space file or input is one line on stderr and exit status 2, as in `search.run`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from search.errors import SearchError, SettingsError

#: Random samples drawn to survey a space.
SURVEY_SAMPLES = 2000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise SettingsError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m search.space",
                     description="Inspect search space files.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check", help="validate a space and show the models it can produce",
        description="Validate a space and show the models it can produce for an input shape.")
    check.error = parser.error  # type: ignore[method-assign]
    check.add_argument("space", help="a space file, or the name of a shipped space")
    check.add_argument("--input", dest="input_shape", default=None, metavar="HxWxC",
                       help="image shape, e.g. 28x28x1 (default: the space's input_shape)")
    check.add_argument("--classes", type=int, default=10, help="number of classes")
    check.add_argument("--samples", type=int, default=SURVEY_SAMPLES,
                       help="random samples to survey")
    check.add_argument("--seed", type=int, default=0, help="seed of the survey's sampler")
    return parser


def parse_shape(text: str) -> tuple[int, int, int]:
    """``28x28x1`` -> (28, 28, 1).

    Raises:
        SettingsError: not three positive whole numbers joined by x.
    """
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*", text)
    if not match or min(int(g) for g in match.groups()) < 1:
        raise SettingsError(f"--input {text!r} is not an image shape like 28x28x1")
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _check(args)
    except SearchError as exc:
        print(f"convsearch: error: {exc}", file=sys.stderr)
        return 2


def _check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from search.distributions import FINITE
    from search.sampling import grid_points, survey_space
    from search.space import load_space

    space = load_space(args.space)
    if args.input_shape is not None:
        shape = parse_shape(args.input_shape)
    elif space.input_shape is not None:
        shape = space.input_shape
    else:
        raise SettingsError(f"{space.path} gives no input_shape; pass --input HxWxC")
    if args.classes < 2 or args.samples < 1:
        raise SettingsError("--classes must be at least 2 and --samples at least 1")
    console = Console(width=None if sys.stdout.isatty() else 120)
    shape_text = "x".join(map(str, shape))

    console.print(f"[bold]{space.path}[/bold]: {space.description or '(no description)'}")
    table = Table(title=f"Knobs ({len(space.searched())} searched)")
    for column in ("knob", "values", "applies when"):
        table.add_column(column)
    for name, distribution in space.distributions.items():
        conditions = " and ".join(map(str, space.conditions.get(name, ())))
        table.add_row(name, str(distribution), conditions)
    console.print(table)
    if space.max_params:
        console.print(f"max_params: {space.max_params:,}")

    searched = space.searched()
    if all(isinstance(d, FINITE) for d in searched.values()) and \
            not any(name in space.conditions for name in searched):
        total = 1
        for distribution in searched.values():
            total *= len(distribution.extremes())
        points, _ = grid_points(space, shape, args.classes)
        console.print(f"grid points: {total:,} ({len(points):,} trainable on {shape_text} "
                      "images)")

    survey = survey_space(space, shape, args.classes, samples=args.samples, seed=args.seed)
    console.print(f"{survey.feasible:,} of {survey.samples:,} sampled configs can be trained "
                  f"on {shape_text} images")
    for kind, count in survey.reasons.most_common(3):
        console.print(f"  {count:,} cannot: {survey.examples[kind]}", markup=False)
    for label, found in (("Smallest", survey.smallest), ("Largest", survey.largest)):
        if found is None:
            continue
        _, plan = found
        layers = Table(title=f"{label} model found: {plan.params:,} parameters")
        for column in ("layer", "kind", "output shape", "params"):
            layers.add_column(column)
        for layer in plan.layers:
            layers.add_row(layer.name, layer.kind, str(layer.output_shape), f"{layer.params:,}")
        console.print(layers)
    if survey.feasible == 0:
        print(f"convsearch: error: none of {survey.samples} sampled configs can be trained on "
              f"{shape_text} images", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
