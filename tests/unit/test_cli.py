"""The command line a user expects: one-line errors naming the flag, checked before any work."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from failmodes.cli import _parser, main


def _failmodes(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "failmodes.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--out", "/proc/x"], None, "--out: cannot write to /proc/x"),
        (["--cache", "/proc/x"], None, "--cache: cannot write to /proc/x"),
        ([], {"FAILMODES_CACHE": "/proc/y"}, "$FAILMODES_CACHE: cannot write to /proc/y"),
    ],
)
def test_an_unusable_folder_fails_at_once_in_one_line(tmp_path, args, env, says):
    args = ["demo", *args] + ([] if "--out" in args else ["--out", str(tmp_path / "out")])
    done = _failmodes(*args, env=env)
    assert done.returncode != 0
    [line] = done.stderr.splitlines()
    assert line.startswith("failmodes demo: error: ")
    assert says in done.stderr and "Traceback" not in done.stderr
    assert "rendering" not in done.stdout  # refused before any work, however fast the machine


def test_a_writable_cache_folder_from_the_environment_is_accepted(tmp_path, monkeypatch):
    from failmodes.cli import _check_folders

    monkeypatch.setenv("FAILMODES_CACHE", str(tmp_path / "cache"))
    args = argparse.Namespace(out=tmp_path / "out", cache=None, no_cache=False)
    assert _check_folders(args) is None
    monkeypatch.setenv("FAILMODES_CACHE", "/proc/y")
    assert _check_folders(args).startswith("$FAILMODES_CACHE: cannot write to /proc/y")


def test_a_file_where_a_folder_should_be_is_named(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("x")
    done = _failmodes("demo", "--out", str(file))
    assert done.returncode == 2
    assert done.stderr.strip() == f"failmodes demo: error: --out: {file} is a file, not a folder"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--seed", "-1"], "--seed"),
        (["--world-seed", str(2**32)], "--world-seed"),
        (["--seed", "x"], "--seed"),
        (["--strength", "1.5"], "--strength"),
        (["--attribute", "size"], "--attribute"),
        (["--cues", "0"], "--cues"),
        (["--cues", "11"], "--cues"),
        (["--debug-strength", "-0.1"], "--debug-strength"),
        (["--images-per-mode", "0"], "--images-per-mode"),
        (["--rank", "lift"], "--rank"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it(args, flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"argument {flag}" in err and "Traceback" not in err


def test_the_world_and_budget_flags_are_read():
    args = _parser().parse_args(
        [
            "demo",
            "--cues",
            "3",
            "--debug-strength",
            "0.5",
            "--images-per-mode",
            "5",
            "--rank",
            "count",
        ]
    )
    assert (args.cues, args.debug_strength, args.images_per_mode, args.rank) == (3, 0.5, 5, "count")
    defaults = _parser().parse_args(["demo"])
    assert (defaults.cues, defaults.debug_strength, defaults.images_per_mode) == (None, 0.0, None)


def test_seeds_at_the_ends_of_their_range_are_taken():
    args = _parser().parse_args(["demo", "--seed", "0", "--world-seed", str(2**32 - 1)])
    assert (args.seed, args.world_seed) == (0, 2**32 - 1)


def test_help_shows_every_default_and_range():
    demo = _parser()._subparsers._group_actions[0].choices["demo"]  # noqa: SLF001
    for action in demo._actions:  # noqa: SLF001
        if action.dest == "help":
            continue
        assert "default" in (action.help or ""), action.option_strings
    text = demo.format_help()
    for needed in ("[0, 4294967295]", "in [0, 1]", "{background,color}", "(default: 0.95)"):
        assert needed in text


def test_version_and_verbose_after_the_subcommand(capsys):
    from failmodes import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"failmodes {__version__}"
    assert _parser().parse_args(["demo", "-v"]).verbose is True
    assert _parser().parse_args(["-v", "demo"]).verbose is True
    assert not hasattr(_parser().parse_args(["demo"]), "verbose")


def test_a_first_run_says_what_it_does_within_five_seconds(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "failmodes.cli",
            "demo",
            "--out",
            str(tmp_path / "out"),
            "--cache",
            str(tmp_path / "cache"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        second = process.stdout.readline()
    finally:
        process.kill()
        process.communicate()
    assert first.startswith("failmodes demo: ToyWorld (world seed 0"), first  # before any work
    assert second.startswith("  rendering the world's"), second


def _settings(*args: str) -> dict:
    """What ``failmodes demo ARGS`` gives run_demo for the settings --paper may set."""
    from failmodes.cli import _demo_settings

    return _demo_settings(_parser().parse_args(["demo", *args]))


def test_a_flag_given_with_paper_overrides_the_papers_value():
    from failmodes.settings import PAPER

    assert _settings("--paper") == {**PAPER, "guard": True}
    assert _settings("--paper", "--real", "failures") == {
        **PAPER,
        "real": "failures",
        "guard": True,
    }
    assert _settings("--paper", "--real", "none")["real"] is None
    assert _settings("--paper", "--select-by", "loss")["select_by"] == "loss"
    assert _settings("--select-by", "accuracy") == {"select_by": "accuracy", "guard": True}
    with_guard = _settings("--paper", "--guard")  # the Debugger's own guard, not the paper's none
    assert "guard_fraction" not in with_guard and with_guard["guard"] is True
    assert _settings("--paper", "--no-guard")["guard"] is False
    assert _settings() == {"guard": True} and _settings("--real", "none") == {
        "real": None,
        "guard": True,
    }
    demo = _parser()._subparsers._group_actions[0].choices["demo"]  # noqa: SLF001
    assert "overrides" in " ".join(demo.format_help().split())


@pytest.mark.parametrize("command", [["demo"], ["run", "config.toml"]])
def test_an_empty_out_is_refused_naming_it(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--out", ""])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "argument --out" in line and "empty" in line
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--debug-size", 10**12), ("--debug-size", 10**8), ("--images-per-mode", 10**9)],
)
def test_demo_sizes_beyond_what_toyworld_holds_are_refused_naming_the_bound(flag, value, capsys):
    from failmodes.toyworld.demo import DEMO_LIMITS

    bound = DEMO_LIMITS[flag[2:].replace("-", "_")]
    with pytest.raises(SystemExit) as exit_:
        main(["demo", flag, str(value)])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"argument {flag}: must be in [1, {bound}], got {value}" in line
    assert "Traceback" not in line
    assert _parser().parse_args(["demo", flag, str(bound)]) is not None  # the bound is taken
    demo = _parser()._subparsers._group_actions[0].choices["demo"]  # noqa: SLF001
    assert f"[1, {bound}]" in " ".join(demo.format_help().split())


def test_cache_prune_leaves_a_folder_that_is_not_a_cache_alone(tmp_path):
    mine = tmp_path / "mine"
    for rel in ("docs/ab/abstract.txt", "notes/me/meeting.json"):
        (mine / rel).parent.mkdir(parents=True)
        (mine / rel).write_text("my own file")
    done = _failmodes("cache", "prune", "--max-size", "0", "--cache", str(mine))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"failmodes cache: error: --cache: {mine} is not a failmodes cache")
    kept = sorted(p.name for p in mine.rglob("*") if p.is_file())
    assert kept == ["abstract.txt", "meeting.json"]  # nothing removed, no tag written
