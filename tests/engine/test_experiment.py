"""A search's folder: its recorded request, and who may have written what resuming runs."""

from __future__ import annotations

import grp
import os

import pytest

from search.engine.experiment import read_request, write_request
from search.errors import SettingsError
from search.settings import SearchSettings


@pytest.fixture
def recorded(tmp_path):
    storage = tmp_path / "ray_results"
    settings = SearchSettings(name="mine", storage=storage)
    write_request(settings, {"version": 1})
    os.chmod(storage, 0o755)
    os.chmod(storage / "mine", 0o755)
    return storage


def test_a_folder_of_ones_own_is_read(recorded):
    assert read_request("mine", recorded) == {"version": 1}


@pytest.mark.parametrize(("where", "mode", "group"), [
    ("mine", 0o777, None), ("mine", 0o757, None), ("mine", 0o1777, None), (".", 0o777, None),
    (".", 0o775, "nogroup"),  # group-writable for a group that is not the owner's own
])
def test_a_folder_others_may_write_is_refused(recorded, where, mode, group):
    path = (recorded / where).resolve()
    if group is not None:
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another group needs root")
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    os.chmod(path, mode)
    with pytest.raises(SettingsError, match=rf"{path} is writable by others, and resuming "
                                            r"a search runs what its folder holds .*"
                                            rf"chmod go-w {path}"):
        read_request("mine", recorded)


def test_a_sticky_storage_folder_like_tmp_is_accepted(recorded):
    os.chmod(recorded, 0o1777)
    assert read_request("mine", recorded) == {"version": 1}


def test_a_user_private_group_may_write(recorded):
    # umask 002 (Ubuntu's) leaves folders writable by the owner's own group, which holds
    # the owner alone.
    os.chmod(recorded / "mine", 0o775)
    assert read_request("mine", recorded) == {"version": 1}
