"""Settings for every test and doctest: one torch thread, and a cache folder of the session."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models: intra-op threads only add overhead, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def cache_folder(tmp_path_factory):
    """Runs cache into a folder of the test session, never into the user's cache."""
    folder = tmp_path_factory.mktemp("failmodes-cache")
    previous = os.environ.get("FAILMODES_CACHE")
    os.environ["FAILMODES_CACHE"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["FAILMODES_CACHE"]
    else:
        os.environ["FAILMODES_CACHE"] = previous
