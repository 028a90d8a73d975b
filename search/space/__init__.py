"""What a search tries: the space language.

A YAML space file (`file`) names a distribution for each knob (`parameters`, with their
value domains in `domains` and Keras's names in `vocabulary`); `sampling` turns a space
into one trial's knob values; ``python -m search.space`` (`cli`) checks a space and renders
its reference. Nothing here imports TensorFlow, Ray or MLflow.
"""

from search.space.file import (
    DEFAULT_SPACE,
    SearchSpace,
    load_space,
    parse_space,
    resolve_space_path,
    shipped_spaces_dir,
)

__all__ = ["DEFAULT_SPACE", "SearchSpace", "load_space", "parse_space", "resolve_space_path",
           "shipped_spaces_dir"]
