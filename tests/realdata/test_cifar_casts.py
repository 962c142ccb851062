"""The CIFAR-10 colour-cast example: a real pretrained ResNet56 and a user's own attribute.

Run with ``pytest -m slow tests/realdata``; it skips when the shared data is missing. About two
and a half minutes on 2 vCPUs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from shared_data import data_root, missing

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cifar_casts.py"


@pytest.mark.slow
def test_cifar_casts_example_keeps_original_accuracy(tmp_path):
    reason = missing("cifar10/train.zip", "cifar10/test.zip", "cifar10-resnets/resnet56.th")
    if reason:
        pytest.skip(reason)
    spec = importlib.util.spec_from_file_location("example_cifar_casts", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example
    spec.loader.exec_module(example)
    out = tmp_path / "out"
    s = example.main(["--data", str(data_root()), "--out", str(out), "--cache", str(tmp_path)])
    assert (out / "report.html").stat().st_size > 0
    assert s["config"]["lam_grid"] == [0.5, 1.0, 2.0] and s["guard_source"] == "train"
    # no guard is given: the Debugger's own, a share of the training photos, keeps every rung
    # of the ladder within 0.01 on unaltered photos no step saw
    for method in ("dfr", "failmodes"):
        key = "original_acc_after" if method == "failmodes" else f"{method}_original_acc_after"
        assert s[key] >= s["original_acc_before"] - 0.01, method
    assert s["caption_accuracy"] >= 0.7  # the pixel-statistics captioner names most casts
    chosen = "" if s["chosen_method"] == "failmodes" else "dfr_"
    assert s[f"{chosen}heldout_acc_after"] > s["refit_heldout_acc_after"] + 0.05
