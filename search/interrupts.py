"""Signal handlers installed for the length of a block, and the ones before put back after:
how the CLI, the Ray Job submitter and the engine take Ctrl+C and SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

Handler = Callable[[int, Any], Any] | int | None


@contextmanager
def signal_handlers(handlers: Mapping[int, Handler]) -> Iterator[None]:
    """Within the block, each signal goes to its handler.

    Give SIGINT `signal.default_int_handler` to have Ctrl+C raise KeyboardInterrupt even
    where the process started with SIGINT ignored (a script's background job, some CI
    runners), which Python would otherwise keep. Main thread only, as for any handler.
    """
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
