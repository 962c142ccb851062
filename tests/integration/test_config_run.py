"""``failmodes run CONFIG.toml`` end to end: the tiny example's run, its outputs and its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from failmodes.cli import main

pytest.importorskip("open_clip")  # ToyCLIP captions

TINY = Path(__file__).resolve().parents[2] / "examples" / "imagenet-tiny.toml"


def _check_summary(summary: dict, *, baselines: bool) -> None:
    """The figures of a run where the repair did its work."""
    assert summary["test_acc_before"] > 0.2  # the classifier sees shapes...
    assert summary["train_like_acc_before"] > 0.9  # ...and leans on their usual backgrounds
    assert summary["n_failures"] == summary["n_seed"] + summary["n_heldout"] > 100
    assert summary["caption_accuracy"] > 0.85  # ToyCLIP names the true background
    # the repair covers failures it never saw, and the test set does not pay for it
    assert summary["heldout_acc_after"] > 0.2
    assert summary["test_acc_after"] > summary["test_acc_before"]
    assert summary["failmodes_worst_group_test_acc"] > summary["before_worst_group_test_acc"]
    assert len(summary["failure_modes"]) == 10
    config = summary["config"]
    assert config["config_file"] == str(TINY) or config["config_file"].endswith(".toml")
    assert config["extra"] == ["train_like"] and config["seed"] == 0
    assert config["proposer"] == "failmodes.proposers.static.StaticProposer"
    assert config["generator"] == "failmodes.toyworld.generator.ToyWorldGenerator"
    assert config["engine"] == "failmodes.engines.LocalEngine"
    if baselines:
        assert summary["heldout_acc_after"] > summary["random_heldout_acc_after"]
        assert summary["heldout_acc_after"] > summary["refit_heldout_acc_after"]
    else:
        assert "random_heldout_acc_after" not in summary


def _smaller(engine: str = "local = {}") -> str:
    """The example's file with smaller sets, one lam and no baselines."""
    text = TINY.read_text()
    for old, new in [
        ("size = 1500}\ntake = 1000", "size = 900}\ntake = 600"),
        ("size = 1500}\nskip = 1000", "size = 900}\nskip = 600"),
        ("size = 300}", "size = 200}"),
        ("lam = [0.5, 1.0]", "lam = 1.0"),
        ("baselines = true", "baselines = false"),
        ("local = {}  # or: ray = {workers = 2}", engine),
    ]:
        assert old in text
        text = text.replace(old, new)
    return text


def test_a_smaller_tiny_run_through_the_command(tmp_path, capsys):
    """The example's file, smaller, in this process."""
    config = tmp_path / "tiny.toml"
    config.write_text(_smaller())
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--cache", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"failmodes run: {config} (seed 0, engine local), writing to {out}")
    assert "  features of debug (600 images)" in printed  # stages, as the demo prints them
    assert "chosen on validation: k=2, lam=1.0, images_per_mode=10" in printed
    summary = json.loads((out / "summary.json").read_text())
    _check_summary(summary, baselines=False)
    assert summary["config"]["config_file"] == str(config)
    assert summary["n_generated"] == 200  # 10 classes x k=2 x 10 images
    assert "circle" in (out / "report.html").read_text()
    # ToyWorld's images know their true background: where the held-out failures lie is printed
    m = summary["heldout_in_modes_share"]
    assert "debug_heldout failures in the targeted modes (by true value): " in printed
    assert f"({m:.0%})\nfixed inside / outside them:\ndfr " in printed and "\nfailmodes " in printed


@pytest.mark.slow
def test_the_tiny_example_as_it_is_and_again_from_the_cache(tmp_path):
    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "failmodes",
                "run",
                str(TINY),
                "--out",
                "out",
                "--cache",
                "cache",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )

    first = run()
    assert first.returncode == 0, first.stderr[-3000:]
    assert "accuracy (before = original head; failmodes = targeted repair):" in first.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    _check_summary(summary, baselines=True)
    assert summary["config"]["lam"] in (0.5, 1.0) and summary["config"]["k"] == 2
    assert summary["n_generated"] == 200
    again = run()
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert rerun.pop("seconds") < summary.pop("seconds")  # every step read back
    assert rerun == summary


@pytest.mark.slow
def test_the_same_file_on_a_local_ray_cluster_gives_the_same_figures(tmp_path):
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    summaries = {}
    # the run starts its own local cluster; its workers leave CPUs to Ray Data's own tasks
    for name, engine in [
        ("local", "local = {}"),
        ("ray", "ray = {workers = 2, cpus_per_worker = 0.5}"),
    ]:
        (tmp_path / f"{name}.toml").write_text(_smaller(engine))
        done = subprocess.run(
            [sys.executable, "-m", "failmodes", "run", f"{name}.toml", "--out", name, "--no-cache"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text())
    local, ray = summaries["local"], summaries["ray"]
    assert ray["config"].pop("engine") == "failmodes.engines.RayEngine"
    assert local["config"].pop("engine") == "failmodes.engines.LocalEngine"
    for summary in (local, ray):
        summary.pop("seconds")
        summary["config"].pop("config_file")
    assert ray == local  # the same figures, bit for bit on a CPU
