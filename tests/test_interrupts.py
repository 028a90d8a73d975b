"""Signal handlers for the length of a block, the earlier ones back after."""

from __future__ import annotations

import os
import signal

import pytest

from search.interrupts import handlers_kept, signal_handlers


def test_ctrl_c_raises_within_the_block_even_where_it_was_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a script's background job
    try:
        with pytest.raises(KeyboardInterrupt), \
                signal_handlers({signal.SIGINT: signal.default_int_handler}):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # Python runs the handler between bytecodes
                pass
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_handlers_kept_puts_back_what_the_block_replaced():
    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with handlers_kept():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init installs its own
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
