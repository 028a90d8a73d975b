"""Stopping a search cleanly on SIGINT (Ctrl+C) and SIGTERM (what Ray Jobs, Kubernetes
and systemd send).

Either signal marks the search interrupted in its `SearchControl`; at its next step,
Tune's loop is asked to stop the way its own Ctrl+C handling does (SIGUSR1, which Tune
listens to while it runs; `forward_interrupt`): Tune then saves the experiment with the
running trials as they stand (each has a checkpoint from its latest epoch), stops the
workers and returns. A second signal stops the driver at once (KeyboardInterrupt).
Tune's own SIGINT handler is switched off: it would make an interrupted search look
finished.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from search.engine.control import SearchControl
from search.interrupts import signal_handlers

#: The signals that stop a search cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def graceful_stop(control: SearchControl) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM stop the search cleanly (see module doc).

    Outside the main thread (where Python cannot handle signals) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"

    def handle(signum: int, frame: Any) -> None:
        if control.interrupted is not None:
            raise KeyboardInterrupt  # a second signal: stop now
        control.interrupt(signum)

    try:
        with signal_handlers(dict.fromkeys(STOP_SIGNALS, handle)):
            yield
    finally:
        if saved_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_env


def forward_interrupt(control: SearchControl) -> None:
    """From inside Tune's loop: if the search was interrupted, ask Tune (once) to stop."""
    if control.interrupted is not None and not control.interrupt_forwarded:
        control.interrupt_forwarded = True
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's "stop and save" signal
