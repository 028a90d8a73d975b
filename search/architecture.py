"""Shape arithmetic of the CNNs convsearch builds, without building a TensorFlow graph.

Every conv layer uses ``same`` padding and stride 1, so only pooling shrinks the feature
map: a pool of size 2 (``valid`` padding) maps a side of length i to floor(i / 2). A model
is impossible when a pooling would receive a map smaller than the pool. `search.run`
checks the whole space against the data before the search starts (`check_space_fits`);
the model builder checks each config again (`check_config_fits`) as a last guard.
"""

from __future__ import annotations

from search.config import TrialConfig
from search.errors import ArchitectureError
from search.space import SearchSpace

#: Pool size (and stride) of the pooling layer that ends each conv block.
POOL_SIZE = 2


def feature_map_sizes(height: int, width: int, conv_blocks: int) -> list[tuple[int, int]]:
    """Spatial size of the feature map after each conv block; stops at the first that
    cannot be pooled, so a list shorter than `conv_blocks` means the model is impossible."""
    sizes = []
    for _ in range(conv_blocks):
        if min(height, width) < POOL_SIZE:
            break
        height, width = height // POOL_SIZE, width // POOL_SIZE
        sizes.append((height, width))
    return sizes


def max_conv_blocks(height: int, width: int) -> int:
    """The most conv blocks an image of this size can go through."""
    blocks = 0
    while min(height, width) >= POOL_SIZE:
        height, width = height // POOL_SIZE, width // POOL_SIZE
        blocks += 1
    return blocks


def _too_deep(blocks: int, height: int, width: int) -> str | None:
    allowed = max_conv_blocks(height, width)
    if blocks <= allowed:
        return None
    return (f"{blocks} conv blocks need images of at least {POOL_SIZE ** blocks}x"
            f"{POOL_SIZE ** blocks}, but these are {height}x{width} (at most {allowed} "
            f"block{'s' if allowed != 1 else ''}: each block's pooling halves the map)")


def check_config_fits(config: TrialConfig, input_shape: tuple[int, ...]) -> None:
    """Raises:
        ArchitectureError: the config's conv blocks shrink the map below the pool size.
    """
    problem = _too_deep(config.conv_blocks, input_shape[0], input_shape[1])
    if problem:
        raise ArchitectureError(problem)


def check_space_fits(space: SearchSpace, input_shape: tuple[int, ...]) -> None:
    """Reject a space whose deepest architecture cannot take the data's images.

    Raises:
        SpaceError: pointing at the ``conv_blocks`` line of the space file.
    """
    deepest = max(space.distributions["conv_blocks"].extremes())
    problem = _too_deep(deepest, input_shape[0], input_shape[1])
    if problem:
        raise space.error("conv_blocks", problem)
