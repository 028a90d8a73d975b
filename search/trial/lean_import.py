"""A trial worker's first import of TensorFlow and Keras, without the packages Keras
loads only for extras no trial uses, so a fresh worker reaches its first epoch sooner.

Keras imports matplotlib (for its image-gallery plots) and scikit-learn (for its
scikit-learn wrappers) whenever they are installed, each inside ``try: import ...
except ImportError``; convsearch needs both, for the driver's figures and data splits.
In a trial worker they cost every fresh worker's first trial about 0.8 s (TensorFlow's
and Keras's import took 1.5-1.8 s without them, 2.3-2.7 s with them; TensorFlow 2.21,
Keras 3.15, 2 CPUs, 5 and 8 runs) and 82 MB of memory the worker keeps.
tests/trial/test_lean_import.py checks that the installed Keras still imports, trains
and saves without them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

#: Top-level packages Keras imports only for extras a trial never uses.
KERAS_EXTRAS = ("matplotlib", "sklearn")


@contextmanager
def keras_extras_skipped() -> Iterator[None]:
    """While this is open, importing a package of `KERAS_EXTRAS` that is not loaded yet
    fails with ImportError (a None entry in ``sys.modules`` is Python's documented way to
    make an import fail), so Keras's first import leaves its extras off. Afterwards the
    packages import as usual; Keras's extras stay off in this process."""
    skipped = [name for name in KERAS_EXTRAS if name not in sys.modules]
    for name in skipped:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in skipped:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
