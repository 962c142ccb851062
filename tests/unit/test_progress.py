"""What a script, a notebook or a configured application sees of a run's progress by default."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from failmodes.progress import progress_bar, set_progress

SCRIPT = """
import logging, sys
from failmodes.progress import progress_bar, set_progress, stage
{setup}
stage("features of %s (%d images)", "debug", 10)
for _ in progress_bar(range(3), desc="extracting"):
    pass
"""


def _stderr(setup: str = "", **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "FAILMODES_PROGRESS"} | env
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(setup=setup)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return done.stderr


def test_a_script_that_configures_no_logging_gets_each_stage_on_stderr():
    err = _stderr()
    assert "failmodes: features of debug (10 images)" in err
    assert "extracting" not in err  # stderr is a pipe: no bar, whose redraws would fill a log


def test_one_setting_silences_stages_and_bars():
    assert _stderr("set_progress(False)") == ""
    assert _stderr(FAILMODES_PROGRESS="0") == ""


def test_progress_on_shows_bars_in_a_log_too():
    err = _stderr(FAILMODES_PROGRESS="1")
    assert "failmodes: features of debug" in err and "extracting: 100%" in err


def test_an_application_that_configures_logging_decides_what_it_shows():
    assert _stderr("logging.basicConfig(level='WARNING')") == ""
    shown = _stderr("logging.basicConfig(level='INFO', format='%(name)s %(message)s')")
    assert "failmodes.stage features of debug (10 images)" in shown
    assert "failmodes: features" not in shown  # once, by the application's handler


def test_an_unreadable_environment_setting_is_named_and_left_to_the_default():
    err = _stderr(FAILMODES_PROGRESS="yes")
    assert "FAILMODES_PROGRESS must be 0, 1 or auto, got 'yes'" in err
    assert "failmodes: features of debug" in err


def test_a_call_or_component_setting_wins_over_the_library_setting(capsys):
    set_progress(False)
    try:
        list(progress_bar(range(2), progress=True, desc="shown"))
        list(progress_bar(range(2), desc="hidden"))
    finally:
        set_progress(None)
    err = capsys.readouterr().err
    assert "shown" in err and "hidden" not in err


def test_set_progress_takes_a_boolean_or_none():
    with pytest.raises(TypeError, match="True, False or None, got 'off'"):
        set_progress("off")
