"""Signal handlers installed for the length of a block, and the ones before put back after:
how the CLI, the Ray Job submitter and the engine take Ctrl+C and SIGTERM, and how the
engine keeps them through `ray.init`, which installs its own."""

from __future__ import annotations

import signal
import threading
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


@contextmanager
def handlers_kept() -> Iterator[None]:
    """Whatever the block installs for SIGINT and SIGTERM (``ray.init`` installs a SIGTERM
    handler that exits the process), the handlers before it are back after it.

    A handler Python did not install (`signal.getsignal` gives None) cannot be put back
    and stays as the block left it. Off the main thread, where no handler can be set,
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
