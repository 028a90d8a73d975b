"""Tune's trial events as convsearch sees them."""

from __future__ import annotations

from search.engine.callbacks import _error_message


class TrialWithoutItsErrorFiles:
    """A trial restored by a later driver: its error files were in the old session."""

    trial_id = "t1"
    pickled_error_file = "/nonexistent/error.pkl"
    error_file = "/nonexistent/error.txt"

    def get_pickled_error(self):
        raise FileNotFoundError("/nonexistent/storage/error.pkl")

    def get_error(self):
        raise FileNotFoundError("/nonexistent/storage/error.txt")


def test_a_lost_error_is_unknown_rather_than_a_crash():
    assert _error_message(TrialWithoutItsErrorFiles()) == "unknown error"
