"""Keeping native libraries' start-up banners out of a command's output."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from search.errors import SearchError


@contextmanager
def native_output_hidden(unless: bool) -> Iterator[None]:
    """Hide what C++ code writes straight to file descriptor 2 while TensorFlow and gRPC
    load (absl and oneDNN banners that no log level silences). If the block fails with a
    bug (not a `SearchError`, which is the user's one line), what was hidden is written
    out before the error propagates."""
    if unless:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as hidden:
        os.dup2(hidden.fileno(), 2)
        try:
            yield
        except SearchError:
            raise
        except BaseException:
            os.dup2(saved, 2)
            hidden.seek(0)
            sys.stderr.write(hidden.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
