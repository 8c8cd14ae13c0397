"""Shared fixtures: run the `shapft` command line in-process and capture what it says."""
import os
import sys

import pytest


@pytest.fixture
def shapft(capsys):
    """shapft(*args) -> (exit code, stdout, stderr) of `shapft args...`."""
    from gnuradio.shapft.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def shapft_executable():
    """The installed console script beside the interpreter running the tests."""
    path = os.path.join(os.path.dirname(sys.executable), "shapft")
    if not os.path.exists(path):
        pytest.fail(f"{path} is not installed; run scripts/setup.sh")
    return path
